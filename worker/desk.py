"""The editor's desk, the ops console, the web archive and the ops token API (server-rendered pages).

Roles are Django groups made by `newsdigest setup_roles`; views check permissions, not group names:
editors need worker.change_digest (and worker.approve_digest to approve), ops worker.send_digest.
Every change to a digest is written to its audit trail and clears the cached render, so the preview
and the next send show exactly what was edited.
"""

import hmac
import re
import secrets
from datetime import timedelta
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import audit, bounces, clicks, deliver, grounding, jobs, llm, ops, schedule, summarize
from . import render as email_render
from .models import (
    ApiToken,
    Delivery,
    Digest,
    DigestItem,
    Newsletter,
    Regeneration,
    StoryRank,
    hash_token,
    transition,
)

EDIT = "worker.change_digest"
APPROVE = "worker.approve_digest"
SEND = "worker.send_digest"


class NotEditable(Exception):
    """The digest left the draft state (approved, sent, cancelled) and can no longer be edited."""


class RoleRequired(PermissionDenied):
    """Refused for want of a role; the 403 page names it (`refused` below)."""

    def __init__(self, role: str):
        super().__init__(role)
        self.role = role


def _requires(permission: str, role: str):
    def decorate(view):
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perm(permission):
                raise RoleRequired(role)
            return view(request, *args, **kwargs)
        return login_required(checked)
    return decorate


_editor = _requires(EDIT, "editor")
_ops = _requires(SEND, "ops")


def landing_url(user) -> str:
    """Each role's start page: the admin's is the admin site, an editor's the drafts, ops' the console."""
    if user.is_superuser or user.has_perm("auth.change_user"):
        return reverse("admin:index")
    if user.has_perm(EDIT):
        return reverse("desk")
    if user.has_perm(SEND):
        return reverse("ops")
    return reverse("archive")


@require_GET
@login_required
def start(request: HttpRequest) -> HttpResponse:
    """Where login leads when no page was asked for."""
    return redirect(landing_url(request.user))


def refused(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 403 page: which role the page needs, and the way back to the reader's own start page."""
    role = getattr(exception, "role", "")
    user = request.user
    return render(request, "pages/desk/refused.html", {
        "role": role, "back": landing_url(user) if user.is_authenticated else reverse("login"),
    }, status=403)


# --- editor's desk ---------------------------------------------------------------------------------

@require_GET
@_editor
def drafts(request: HttpRequest) -> HttpResponse:
    digests = (Digest.objects.select_related("newsletter").order_by("-pk")
               .filter(status__in=[Digest.Status.DRAFT, Digest.Status.APPROVED]))
    recent = (Digest.objects.select_related("newsletter").order_by("-pk")
              .exclude(status__in=[Digest.Status.DRAFT, Digest.Status.APPROVED]))[:20]
    return render(request, "pages/desk/drafts.html", {"digests": digests, "recent": recent})


def highlight(text: str, quotes: list[str]) -> SafeString:
    """The source text, escaped, with every evidence quote found in it wrapped in <mark>."""
    quotes = sorted({q.strip() for q in quotes if q and q.strip() and q.strip() in text}, key=len, reverse=True)
    if not quotes:
        return escape(text)
    pattern = re.compile("|".join(re.escape(q) for q in quotes))
    out, last = [], 0
    for match in pattern.finditer(text):
        out += [escape(text[last:match.start()]), f"<mark>{escape(match.group())}</mark>"]
        last = match.end()
    out.append(escape(text[last:]))
    return mark_safe("".join(out))  # noqa: S308 - every piece above is escaped


def actors_as_lines(actors: list[dict]) -> str:
    return "\n".join(" | ".join([a.get("name", ""), a.get("role", ""), a.get("action", "")]).rstrip(" |")
                     for a in actors)


def actors_from_lines(lines: str, current: list[dict]) -> list[dict]:
    """`Name | role | action` per line; kind and evidence are kept for names that were already there."""
    known = {a.get("name"): a for a in current}
    actors = []
    for line in lines.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if not parts[0]:
            continue
        base = known.get(parts[0], {"kind": "other", "evidence": ""})
        actors.append({**base, "name": parts[0], "role": parts[1] if len(parts) > 1 else "",
                       "action": " | ".join(parts[2:]) if len(parts) > 2 else ""})
    return actors


@require_GET
@_editor
def draft(request: HttpRequest, pk: int) -> HttpResponse:
    digest = get_object_or_404(Digest.objects.select_related("newsletter", "approved_by"), pk=pk)
    items = list(digest.items.select_related("article__source", "summary"))
    signals = clicks.item_stats(digest)
    ranks = dict(StoryRank.objects.filter(item__digest=digest).values_list("item_id", "detail"))
    latest = {}  # item -> its latest regeneration, to show progress or the failure
    for job in Regeneration.objects.filter(item__digest=digest).order_by("created_at", "pk"):
        latest[job.item_id] = job
    stories = []
    for item in items:
        evidence = [a.get("evidence", "") for a in (item.summary.key_actors if item.summary else [])]
        stories.append({
            "item": item,
            "flags": [*(item.summary.flags if item.summary else ["no summary"]), *editor_flags(item)],
            "actors_lines": actors_as_lines(item.key_actors),
            "source_text": highlight(item.article.text, evidence),
            "evidence_count": sum(1 for q in evidence if q and q in item.article.text),
            "clicks": signals.get(item.pk), "rank": ranks.get(item.pk),
            "regeneration": latest.get(item.pk),
        })
    text = email_render.for_archive(email_render.ensure_rendered(digest)).text
    pending = any(s["regeneration"] and s["regeneration"].status in ("queued", "running") for s in stories)
    return render(request, "pages/desk/draft.html", {
        "digest": digest, "stories": stories, "regenerating": pending, "text": text,
        "voice_form": VoiceForm(instance=digest.newsletter),
        "editable": digest.status == Digest.Status.DRAFT,
        "sent": digest.status in clicks.COUNTED_STATES,
        "trail": [(e, audit.describe(e)) for e in audit.trail(digest.pk)],
        "can_approve": request.user.has_perm(APPROVE), "can_send": request.user.has_perm(SEND),
    })


def editor_flags(item: DigestItem) -> list[str]:
    """The editor's overrides are grounded like a model's answer: names and numbers the article lacks."""
    written = " ".join(filter(None, (item.headline_override, item.summary_override, item.why_override)))
    return grounding.editor_text_flags(written, f"{item.article.title}\n\n{item.article.text}")


@require_GET
@xframe_options_sameorigin
@login_required
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The email exactly as mailed (placeholders filled as in the archive), for the desk's iframe."""
    if not (request.user.has_perm(EDIT) or request.user.has_perm(SEND)):
        raise Http404
    digest = get_object_or_404(Digest.objects.select_related("newsletter"), pk=pk)
    return HttpResponse(email_render.for_archive(email_render.ensure_rendered(digest)).html)


def _change(request: HttpRequest, pk: int, action: str, apply, **detail) -> HttpResponse:
    """Run `apply(digest)` on a locked draft, audit it and drop the cached render; refuse otherwise."""
    try:
        with transaction.atomic():
            digest = get_object_or_404(Digest.objects.select_for_update(), pk=pk)
            if digest.status != Digest.Status.DRAFT:
                raise NotEditable(f"digest {pk} is {digest.status}; only a draft can be edited")
            extra = apply(digest) or {}
            Digest.objects.filter(pk=pk).update(rendered_at=None)
            audit.record(pk, request.user, action, **detail, **extra)
    except NotEditable as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{action}: saved")
    return redirect(reverse("desk-draft", args=[pk]) + request.POST.get("anchor", ""))


def _item(digest: Digest, item_pk: int) -> DigestItem:
    return get_object_or_404(DigestItem.objects.select_related("summary"), pk=item_pk, digest=digest)


@require_POST
@_editor
def edit_meta(request: HttpRequest, pk: int) -> HttpResponse:
    subject = " ".join(request.POST.get("subject", "").split())[:300]
    intro = request.POST.get("intro", "").strip()
    if not subject:
        messages.error(request, "the subject cannot be empty")
        return redirect("desk-draft", pk=pk)

    def apply(digest: Digest) -> dict:
        changed = [f for f, v in (("subject", subject), ("intro", intro)) if getattr(digest, f) != v]
        Digest.objects.filter(pk=digest.pk).update(subject=subject, intro=intro)
        return {"fields": changed}

    return _change(request, pk, "edited subject/intro", apply)


@require_POST
@_editor
def edit_item(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    def apply(digest: Digest) -> dict:
        item = _item(digest, item_pk)
        summary = item.summary
        original = {
            "headline_override": (summary.headline if summary else "") or item.article.title,
            "summary_override": summary.summary if summary else "",
            "why_override": summary.why_it_matters if summary else "",
        }
        changed = []
        for field, original_value in original.items():
            name = field.removesuffix("_override")
            if name not in request.POST:
                continue
            value = request.POST[name].strip()
            # Text equal to the summary's is no override: a regenerated summary then shows through.
            value = "" if value == original_value else value
            if value != getattr(item, field):
                setattr(item, field, value)
                changed.append(name)
        if "actors" in request.POST:
            actors = actors_from_lines(request.POST["actors"], item.key_actors)
            if actors != item.key_actors:
                item.actors_override = actors
                changed.append("actors")
        item.save()
        return {"item": item.pk, "story": item.headline, "fields": changed}

    return _change(request, pk, "edited story", apply)


@require_POST
@_editor
def move_item(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        messages.error(request, "direction must be up or down")
        return redirect("desk-draft", pk=pk)

    def apply(digest: Digest) -> dict:
        items = list(digest.items.all())
        index = next((i for i, it in enumerate(items) if it.pk == item_pk), None)
        if index is None:
            raise Http404
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(items):
            items[index], items[other] = items[other], items[index]
            index = other
        for position, item in enumerate(items):
            item.position = position
        DigestItem.objects.bulk_update(items, ["position"])
        return {"item": item_pk, "direction": direction, "position": index + 1}

    return _change(request, pk, "moved story", apply)


@require_POST
@_editor
def remove_item(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    def apply(digest: Digest) -> dict:
        item = _item(digest, item_pk)
        story = item.headline
        item.delete()
        return {"item": item_pk, "story": story}

    return _change(request, pk, "removed story", apply)


@require_POST
@_editor
def regenerate_item(request: HttpRequest, pk: int, item_pk: int) -> HttpResponse:
    """Queue a fresh summary for the story's article: a worker asks the model, the page shows the
    progress (no web request ever waits on a model). One regeneration per story at a time."""
    item = get_object_or_404(DigestItem, pk=item_pk, digest_id=pk)
    if Digest.objects.filter(pk=pk).values_list("status", flat=True).first() != Digest.Status.DRAFT:
        messages.error(request, f"digest {pk} is no longer a draft; only a draft can be edited")
        return redirect("desk-draft", pk=pk)
    with transaction.atomic():
        pending = Regeneration.Status.QUEUED, Regeneration.Status.RUNNING
        if item.regenerations.filter(status__in=pending).exists():
            messages.info(request, "a regeneration of this story is already under way")
        else:
            job = Regeneration.objects.create(item=item, requested_by=request.user)
            audit.record(pk, request.user, "requested a new summary", item=item.pk, regeneration=job.pk)
            jobs.enqueue_after_commit(jobs.Job.REGENERATE_SUMMARY, job.pk)
            messages.success(request, "regenerating the summary: this page shows when it is done")
    return redirect(reverse("desk-draft", args=[pk]) + f"#story-{item.pk}")


@require_GET
@_editor
def regeneration_status(request: HttpRequest, pk: int) -> JsonResponse:
    """What the draft page polls while a worker regenerates: each unfinished or failed job's state."""
    jobs = Regeneration.objects.filter(item__digest_id=pk).order_by("created_at", "pk")
    latest = {job.item_id: {"status": job.status, "error": job.error} for job in jobs}
    pending = any(j["status"] in (Regeneration.Status.QUEUED, Regeneration.Status.RUNNING) for j in latest.values())
    return JsonResponse({"pending": pending, "items": {str(k): v for k, v in latest.items()}})


class VoiceForm(forms.ModelForm):
    class Meta:
        model = Newsletter
        fields = ["summary_language", "summary_length", "summary_tone", "summary_instructions"]


@require_POST
@_editor
def edit_voice(request: HttpRequest, pk: int) -> HttpResponse:
    """The newsletter's voice, from a draft of it; it applies to summaries written from now on
    (part of the cache key, so "Regenerate" rewrites a story in the new voice)."""
    digest = get_object_or_404(Digest.objects.select_related("newsletter"), pk=pk)
    form = VoiceForm(request.POST, instance=digest.newsletter)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    else:
        form.save()
        audit.record(pk, request.user, "edited newsletter voice", fields=form.changed_data)
        messages.success(request, "voice saved: new and regenerated summaries use it")
    return redirect(reverse("desk-draft", args=[pk]) + "#voice")


def run_regeneration(regeneration_id: int) -> Regeneration:
    """The worker's half of "Regenerate": summarize again (force), then put the fresh summary on
    the story (dropping the editor's overrides of the old one), if the digest is still a draft."""
    job = Regeneration.objects.select_related("item").get(pk=regeneration_id)
    if not transition(Regeneration.objects.filter(pk=job.pk), from_status=Regeneration.Status.QUEUED,
                      to_status=Regeneration.Status.RUNNING):
        return job  # a redelivered task: another worker has it
    try:
        fresh = summarize.summarize_article(job.item.article_id, force=True)
        with transaction.atomic():
            digest = Digest.objects.select_for_update().get(pk=job.item.digest_id)
            if digest.status != Digest.Status.DRAFT:
                raise NotEditable(f"digest {digest.pk} is {digest.status}; only a draft can be edited")
            DigestItem.objects.filter(pk=job.item_id).update(
                summary=fresh, headline_override="", summary_override="", why_override="", actors_override=None)
            Digest.objects.filter(pk=digest.pk).update(rendered_at=None)
            audit.record(digest.pk, job.requested_by, "regenerated summary", item=job.item_id, summary=fresh.pk,
                         engine=fresh.engine)
            transition(Regeneration.objects.filter(pk=job.pk), from_status=Regeneration.Status.RUNNING,
                       to_status=Regeneration.Status.DONE, finished_at=timezone.now())
    except (llm.LLMError, NotEditable) as exc:
        transition(Regeneration.objects.filter(pk=job.pk), from_status=Regeneration.Status.RUNNING,
                   to_status=Regeneration.Status.FAILED, error=str(exc), finished_at=timezone.now())
    job.refresh_from_db()
    return job


@require_POST
@_requires(APPROVE, "editor")
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    if schedule.approve(pk, user=request.user):
        messages.success(request, f"digest {pk} approved")
    else:
        messages.error(request, f"digest {pk} is not a draft; nothing was approved")
    return redirect("desk-draft", pk=pk)


@require_POST
@_editor
def send_test(request: HttpRequest, pk: int) -> HttpResponse:
    digest = get_object_or_404(Digest.objects.select_related("newsletter"), pk=pk)
    if not request.user.email:
        messages.error(request, "your account has no email address; ask an admin to add one")
        return redirect("desk-draft", pk=pk)
    try:
        deliver.send_test(digest, request.user.email)
    except OSError as exc:
        messages.error(request, f"the test message could not be sent: {exc}")
        return redirect("desk-draft", pk=pk)
    audit.record(pk, request.user, "test sent", to=request.user.email)
    messages.success(request, f"test message sent to {request.user.email}")
    return redirect("desk-draft", pk=pk)


# --- ops console -----------------------------------------------------------------------------------

@require_GET
@_ops
def console(request: HttpRequest) -> HttpResponse:
    digests = list(Digest.objects.select_related("newsletter").exclude(status=Digest.Status.DRAFT).order_by("-pk")[:50])
    totals = clicks.digest_totals([d.pk for d in digests])
    for digest in digests:
        digest.click_totals = totals[digest.pk]
    return render(request, "pages/desk/console.html", {"digests": digests})


@require_GET
@_ops
def console_digest(request: HttpRequest, pk: int) -> HttpResponse:
    digest = get_object_or_404(Digest.objects.select_related("newsletter"), pk=pk)
    failures = (Delivery.objects.filter(digest=digest, status=Delivery.Status.FAILED)
                .select_related("subscriber").order_by("pk"))
    return render(request, "pages/desk/console_digest.html", {
        "digest": digest, "status": ops.status(pk), "failures": failures, "rates": bounces.rates_line(pk),
        "recipients": deliver.eligible_subscribers(digest).count(),
        "click_totals": clicks.digest_totals([pk])[pk],
        "trail": [(e, audit.describe(e)) for e in audit.trail(pk)],
    })


@require_GET
@_ops
def console_status(request: HttpRequest, pk: int) -> JsonResponse:
    get_object_or_404(Digest, pk=pk)
    return JsonResponse(ops.status(pk))


@require_POST
@_ops
def console_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    get_object_or_404(Digest, pk=pk)
    try:
        messages.success(request, ops.perform(action, pk, request.user))
    except deliver.SendRefused as exc:
        messages.error(request, str(exc))
    return redirect("ops-digest", pk=pk)


# --- token API -------------------------------------------------------------------------------------

def _password_marker(user: User) -> str:
    # Changes with the password (Django's session auth hash, an HMAC of the password hash).
    return hash_token(user.get_session_auth_hash())


def api_token(user: User, days: int | None = None) -> str:
    """A new key for the ops API, shown this once (stored hashed); it expires after `days`
    (NEWSDIGEST_OPS_TOKEN_DAYS) and dies with a password change or revoke_api_tokens."""
    key = "nd_" + secrets.token_urlsafe(32)
    days = settings.NEWSDIGEST_OPS_TOKEN_DAYS if days is None else days
    ApiToken.objects.create(user=user, key_hash=hash_token(key), password_marker=_password_marker(user),
                            expires_at=timezone.now() + timedelta(days=days))
    return key


def revoke_api_tokens(user: User) -> int:
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())


def _token_user(request: HttpRequest) -> User | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Token" or not key.strip():
        return None
    token = (ApiToken.objects.select_related("user")
             .filter(key_hash=hash_token(key.strip()), revoked_at__isnull=True, expires_at__gt=timezone.now(),
                     user__is_active=True).first())
    if token is None or not hmac.compare_digest(token.password_marker, _password_marker(token.user)):
        return None
    return token.user


def _api(view):
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = _token_user(request)
        if user is None:
            response = JsonResponse({"error": "missing or invalid token (Authorization: Token <key>)"}, status=401)
            response["WWW-Authenticate"] = "Token"
            return response
        if not user.has_perm(SEND):
            return JsonResponse({"error": f"{user.get_username()} may not operate sends"}, status=403)
        request.user = user
        return view(request, *args, **kwargs)

    # Token-authenticated, no cookies: CSRF cannot apply.
    return csrf_exempt(wrapped)


@require_GET
@_api
def api_status(request: HttpRequest, pk: int) -> JsonResponse:
    try:
        return JsonResponse(ops.status(pk))
    except deliver.SendRefused as exc:
        return JsonResponse({"error": str(exc)}, status=404)


@require_POST
@_api
def api_action(request: HttpRequest, pk: int, action: str) -> JsonResponse:
    if not Digest.objects.filter(pk=pk).exists():
        return JsonResponse({"error": f"no digest {pk}"}, status=404)
    try:
        message = ops.perform(action, pk, request.user)
    except deliver.SendRefused as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse({"ok": True, "message": message, "status": ops.status(pk)})


# --- web archive -----------------------------------------------------------------------------------

def _may_read(request: HttpRequest, newsletter: Newsletter) -> bool:
    return newsletter.public_archive or (request.user.is_authenticated and request.user.is_staff)


@require_GET
def archive(request: HttpRequest) -> HttpResponse:
    newsletters = [n for n in Newsletter.objects.order_by("name") if _may_read(request, n)]
    return render(request, "pages/desk/archive.html", {"newsletters": newsletters})


@require_GET
def archive_newsletter(request: HttpRequest, slug: str) -> HttpResponse:
    newsletter = get_object_or_404(Newsletter, slug=slug)
    if not _may_read(request, newsletter):
        if request.user.is_authenticated:
            raise Http404
        return redirect(f"{reverse('login')}?next={request.path}")
    digests = list(newsletter.digests.filter(status=Digest.Status.SENT).order_by("-sent_at", "-pk"))
    totals, top = clicks.digest_totals([d.pk for d in digests]), clicks.most_read([d.pk for d in digests])
    for digest in digests:
        digest.click_totals, digest.most_read = totals[digest.pk], top.get(digest.pk)
    return render(request, "pages/desk/archive_newsletter.html", {"newsletter": newsletter, "digests": digests})


urlpatterns = [
    path("desk/login/", auth_views.LoginView.as_view(template_name="pages/desk/login.html"), name="login"),
    path("desk/start/", start, name="start"),
    path("desk/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("desk/", drafts, name="desk"),
    path("desk/digests/<int:pk>/", draft, name="desk-draft"),
    path("desk/digests/<int:pk>/preview", preview, name="desk-preview"),
    path("desk/digests/<int:pk>/meta", edit_meta, name="desk-meta"),
    path("desk/digests/<int:pk>/approve", approve, name="desk-approve"),
    path("desk/digests/<int:pk>/test", send_test, name="desk-test"),
    path("desk/digests/<int:pk>/items/<int:item_pk>/edit", edit_item, name="desk-item-edit"),
    path("desk/digests/<int:pk>/items/<int:item_pk>/move", move_item, name="desk-item-move"),
    path("desk/digests/<int:pk>/items/<int:item_pk>/remove", remove_item, name="desk-item-remove"),
    path("desk/digests/<int:pk>/items/<int:item_pk>/regenerate", regenerate_item, name="desk-item-regenerate"),
    path("desk/digests/<int:pk>/regenerations", regeneration_status, name="desk-regenerations"),
    path("desk/digests/<int:pk>/voice", edit_voice, name="desk-voice"),
    path("desk/ops/", console, name="ops"),
    path("desk/ops/digests/<int:pk>/", console_digest, name="ops-digest"),
    path("desk/ops/digests/<int:pk>/status.json", console_status, name="ops-status"),
    path("desk/ops/digests/<int:pk>/<str:action>", console_action, name="ops-action"),
    path("api/ops/digests/<int:pk>/", api_status, name="api-ops-status"),
    path("api/ops/digests/<int:pk>/<str:action>", api_action, name="api-ops-action"),
    path("archive/", archive, name="archive"),
    path("archive/<slug:slug>/", archive_newsletter, name="archive-newsletter"),
]
