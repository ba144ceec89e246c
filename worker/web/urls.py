"""The one URLconf: every page and endpoint of the site, by the module of worker.web that serves it."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from . import archive, clicks, console, desk, health, metrics, ops_api, security, sources_api, subscribers, webhooks

urlpatterns = [
    # The site's front door (and where the browser copy's footer links lead) is the public archive.
    path("", RedirectView.as_view(pattern_name="archive"), name="home"),
    path("admin/", admin.site.urls),
    # subscribers
    path("u/<str:token>", subscribers.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>", subscribers.preferences, name="preferences"),
    path("subscribe/<slug:slug>/", subscribers.subscribe, name="subscribe"),
    path("api/subscribe/<slug:slug>", subscribers.subscribe_api, name="subscribe-api"),
    path("confirm/<str:token>", subscribers.confirm, name="confirm"),
    path("digests/<int:pk>/", subscribers.digest_view, name="digest-view"),
    # sources pushing articles, the ESP's webhooks, reader clicks
    path("api/articles", sources_api.articles, name="api-articles"),
    path("anymail/<slug:esp>/tracking/", webhooks.tracking, name="anymail-tracking"),
    path("r/<str:token>", clicks.follow, name="click"),
    # staff sign-in; each role then starts on its own page
    path("desk/login/", auth_views.LoginView.as_view(template_name="pages/desk/login.html"), name="login"),
    path("desk/start/", security.start, name="start"),
    path("desk/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    # the editor's desk
    path("desk/", desk.drafts, name="desk"),
    path("desk/digests/<int:pk>/", desk.draft, name="desk-draft"),
    path("desk/digests/<int:pk>/preview", desk.preview, name="desk-preview"),
    path("desk/digests/<int:pk>/meta", desk.edit_meta, name="desk-meta"),
    path("desk/digests/<int:pk>/approve", desk.approve, name="desk-approve"),
    path("desk/digests/<int:pk>/test", desk.send_test, name="desk-test"),
    path("desk/digests/<int:pk>/items/<int:item_pk>/edit", desk.edit_item, name="desk-item-edit"),
    path("desk/digests/<int:pk>/items/<int:item_pk>/move", desk.move_item, name="desk-item-move"),
    path("desk/digests/<int:pk>/items/<int:item_pk>/remove", desk.remove_item, name="desk-item-remove"),
    path("desk/digests/<int:pk>/items/<int:item_pk>/regenerate", desk.regenerate_item, name="desk-item-regenerate"),
    path("desk/digests/<int:pk>/regenerations", desk.regeneration_status, name="desk-regenerations"),
    path("desk/digests/<int:pk>/voice", desk.edit_voice, name="desk-voice"),
    # the ops console
    path("desk/ops/", console.console, name="ops"),
    path("desk/ops/bounces/", console.recent_bounces, name="ops-bounces"),
    path("desk/ops/bounces/unsuppress", console.unsuppress, name="ops-unsuppress"),
    path("desk/ops/digests/<int:pk>/", console.console_digest, name="ops-digest"),
    path("desk/ops/digests/<int:pk>/status.json", console.console_status, name="ops-status"),
    path("desk/ops/digests/<int:pk>/<str:action>", console.console_action, name="ops-action"),
    # the ops API
    path("api/ops/digests/<int:pk>/", ops_api.api_status, name="api-ops-status"),
    path("api/ops/digests/<int:pk>/<str:action>", ops_api.api_action, name="api-ops-action"),
    # the archive
    path("archive/", archive.archive, name="archive"),
    path("archive/<slug:slug>/", archive.archive_newsletter, name="archive-newsletter"),
    path("archive/<slug:slug>/feed.atom", archive.ArchiveFeed(), name="archive-feed"),
    # monitoring
    path("health", health.health, name="health"),
    path("metrics", metrics.metrics, name="metrics"),
]

# A refusal names the role the page needs and links back to the reader's start page.
handler403 = "worker.web.security.refused"
