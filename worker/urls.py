from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from . import api, views, webhooks

urlpatterns = [
    # The site's front door (and where the browser copy's footer links lead) is the public archive.
    path("", RedirectView.as_view(pattern_name="archive"), name="home"),
    path("admin/", admin.site.urls),
    path("api/articles", api.articles, name="api-articles"),
    path("u/<str:token>", views.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>", views.preferences, name="preferences"),
    path("subscribe/<slug:slug>/", views.subscribe, name="subscribe"),
    path("api/subscribe/<slug:slug>", views.subscribe_api, name="subscribe-api"),
    path("confirm/<str:token>", views.confirm, name="confirm"),
    path("anymail/<slug:esp>/tracking/", webhooks.tracking, name="anymail-tracking"),
    path("digests/<int:pk>/", views.digest_view, name="digest-view"),
    path("", include("worker.desk")),
    path("", include("worker.bounce_views")),
    path("", include("worker.health")),
    path("", include("worker.clicks")),
    path("", include("worker.feed")),
]

# A refusal names the role the page needs and links back to the reader's start page.
handler403 = "worker.desk.refused"
