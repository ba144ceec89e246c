"""The editor's desk: drafts, editing and reordering stories, regenerating a summary, the newsletter's
voice, approving and sending a test (server-rendered pages).

Editors need worker.ops.EDIT (and APPROVE to approve). Every change to a digest is written to its audit
trail and clears the cached render, so the preview and the next send show exactly what was edited.
"""

import re

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from .. import audit, clicks, deliver, jobs, ops, schedule
from .. import render as email_render
from ..models import Digest, DigestItem, Newsletter, Regeneration, StoryRank
from ..summarize.grounding import editor_text_flags
from .security import requires


class NotEditable(Exception):
    """The digest left the draft state (approved, sent, cancelled) and can no longer be edited."""


_editor = requires(ops.EDIT)


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
        "can_approve": request.user.has_perm(ops.APPROVE), "can_send": request.user.has_perm(ops.SEND),
    })


def editor_flags(item: DigestItem) -> list[str]:
    """The editor's overrides are grounded like a model's answer: names and numbers the article lacks."""
    written = " ".join(filter(None, (item.headline_override, item.summary_override, item.why_override)))
    return editor_text_flags(written, f"{item.article.title}\n\n{item.article.text}")


@require_GET
@xframe_options_sameorigin
@login_required
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The email exactly as mailed (placeholders filled as in the archive), for the desk's iframe."""
    if not (request.user.has_perm(ops.EDIT) or request.user.has_perm(ops.SEND)):
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


@require_POST
@requires(ops.APPROVE)
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
