"""The editor's desk, the ops console, the ops token API and CLI, the archive, roles and the admin."""

import html
import io
import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from tests.helpers.factories import make_digest, summarized_article
from tests.web.desk_helpers import client_for, items, person, post
from worker import deliver, ops, render
from worker.models import AuditEntry, Delivery, Digest, DigestItem, Newsletter, Summary
from worker.web import desk

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


# --- access ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["desk", "ops"])
def test_anonymous_is_sent_to_log_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response["Location"].startswith("/desk/login/")


def test_anonymous_sees_no_draft_preview_or_progress(client, digest):
    for name in ("desk-draft", "desk-preview", "ops-digest", "ops-status"):
        response = client.get(reverse(name, args=[digest.pk]))
        assert response.status_code == 302, name
        assert digest.subject not in response.content.decode()


def test_an_editor_cannot_send(editor, digest):
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.APPROVED)
    assert post(editor, "ops-action", digest.pk, "send").status_code == 403
    assert editor.get(reverse("ops-digest", args=[digest.pk])).status_code == 403
    digest.refresh_from_db()
    assert digest.status == Digest.Status.APPROVED and not Delivery.objects.exists()


def test_posts_without_a_csrf_token_are_refused(roles, digest):
    client = client_for(person("editor"), enforce_csrf_checks=True)
    response = client.post(reverse("desk-meta", args=[digest.pk]), {"subject": "Hijacked"})
    assert response.status_code == 403
    digest.refresh_from_db()
    assert digest.subject != "Hijacked"


def test_login_page_logs_an_editor_in(roles):
    person("editor")
    client = Client()
    response = client.post(reverse("login"), {"username": "editor", "password": "a-long-password", "next": "/desk/"})
    assert response.status_code == 302 and response["Location"] == "/desk/"
    assert client.get("/desk/").status_code == 200


# --- the editor's desk -----------------------------------------------------------------------------

def test_the_draft_page_shows_the_mailed_email_and_its_text(editor, digest):
    page = editor.get(reverse("desk-draft", args=[digest.pk])).content.decode()
    assert f'src="{reverse("desk-preview", args=[digest.pk])}"' in page
    assert "Phone 375px" in page and "Desktop 600px" in page
    text = render.for_archive(render.ensure_rendered(digest)).text
    assert items(digest)[0].headline in page and text.splitlines()[0] in page

    preview = editor.get(reverse("desk-preview", args=[digest.pk]))
    assert preview["X-Frame-Options"] == "SAMEORIGIN"
    digest.refresh_from_db()
    assert preview.content.decode() == render.for_archive(render.ensure_rendered(digest)).html


def test_editing_a_story_overrides_it_audits_it_and_rerenders(editor, digest):
    render.ensure_rendered(digest)
    item = items(digest)[0]
    post(editor, "desk-item-edit", digest.pk, item.pk, headline="Bridge reopens, lorries welcome",
         summary=item.summary_text, why=item.why_it_matters, actors="Mayor Elena Ruiz | mayor | opened it")
    item.refresh_from_db()
    digest.refresh_from_db()
    assert item.headline_override == "Bridge reopens, lorries welcome"
    assert item.summary_override == ""  # unchanged text stays the summary's
    assert item.actors_override == [{"name": "Mayor Elena Ruiz", "role": "mayor", "action": "opened it"}]
    assert digest.rendered_at is None
    entry = AuditEntry.objects.get(digest=digest, action="edited story")
    assert entry.user.username == "editor" and entry.detail["fields"] == ["headline", "actors"]
    assert "Bridge reopens, lorries welcome" in editor.get(reverse("desk-preview", args=[digest.pk])).content.decode()
    assert "edited story" in editor.get(reverse("desk-draft", args=[digest.pk])).content.decode()


def test_subject_and_intro_are_editable(editor, digest):
    post(editor, "desk-meta", digest.pk, subject="  Friday\r\nbrief ", intro="Hello all.")
    digest.refresh_from_db()
    assert (digest.subject, digest.intro) == ("Friday brief", "Hello all.")
    assert AuditEntry.objects.get(digest=digest).detail == {"fields": ["subject", "intro"]}


def test_moving_a_story_up_swaps_it_with_the_one_above(editor, digest):
    first, second, third = items(digest)
    post(editor, "desk-item-move", digest.pk, third.pk, direction="up")
    assert [i.pk for i in items(digest)] == [first.pk, third.pk, second.pk]
    post(editor, "desk-item-move", digest.pk, first.pk, direction="up")  # already first: nothing moves
    assert [i.pk for i in items(digest)] == [first.pk, third.pk, second.pk]
    assert AuditEntry.objects.filter(digest=digest, action="moved story").count() == 2


def test_removing_a_story_takes_it_out_of_the_email(editor, digest):
    gone = items(digest)[1]
    post(editor, "desk-item-remove", digest.pk, gone.pk)
    assert gone.pk not in [i.pk for i in items(digest)]
    assert gone.headline not in editor.get(reverse("desk-preview", args=[digest.pk])).content.decode()
    assert AuditEntry.objects.get(digest=digest, action="removed story").detail["story"] == gone.headline


def test_regenerating_a_story_gives_it_a_fresh_summary_and_drops_overrides(editor, digest,
                                                                          django_capture_on_commit_callbacks):
    item = items(digest)[0]
    seed_summary = item.summary_id
    DigestItem.objects.filter(pk=item.pk).update(summary_override="An editor's text.")
    with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly once the request commits
        post(editor, "desk-item-regenerate", digest.pk, item.pk)
    item.refresh_from_db()
    assert item.summary_id != seed_summary
    assert item.summary.engine == "offline" and item.summary.model  # the offline engine's version, not the seed's
    assert item.summary_override == ""
    assert Summary.objects.filter(article=item.article).count() == 2
    assert AuditEntry.objects.get(digest=digest, action="regenerated summary").detail["summary"] == item.summary_id


def test_a_digest_that_left_draft_cannot_be_edited(editor, digest):
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.APPROVED)
    item = items(digest)[0]
    response = post(editor, "desk-item-edit", digest.pk, item.pk, headline="Too late")
    item.refresh_from_db()
    assert item.headline_override == ""
    assert not AuditEntry.objects.exists()
    assert "only a draft can be edited" in editor.get(response["Location"]).content.decode()


def test_evidence_quotes_are_marked_in_the_source_and_flags_shown(editor, digest):
    item = items(digest)[0]
    quote = item.article.text.split(". ")[0] + "."
    Summary.objects.filter(pk=item.summary_id).update(
        flags=["actor not in text: Zed"], key_actors=[{"name": "City", "role": "", "action": "", "evidence": quote}])
    page = editor.get(reverse("desk-draft", args=[digest.pk])).content.decode()
    assert f"<mark>{quote}</mark>" in page
    assert "actor not in text: Zed" in page


def test_highlight_escapes_the_source_text():
    marked = desk.highlight("<b>Mayor</b> said yes. Then <i>no</i>.", ["said yes.", "<i>"])
    assert marked == "&lt;b&gt;Mayor&lt;/b&gt; <mark>said yes.</mark> Then <mark>&lt;i&gt;</mark>no&lt;/i&gt;."


def test_approving_records_who_approved(roles, digest):
    editor_user = person("editor")
    post(client_for(editor_user), "desk-approve", digest.pk)
    digest.refresh_from_db()
    assert digest.status == Digest.Status.APPROVED and digest.approved_by == editor_user
    assert AuditEntry.objects.get(digest=digest, action="approved").user == editor_user


def test_a_test_message_goes_to_the_editor(editor, digest, smtp):
    post(editor, "desk-test", digest.pk)
    assert [m["To"] for m in smtp.messages] == ["editor@example.com"]
    assert smtp.messages[0]["Subject"] == digest.subject
    assert AuditEntry.objects.get(digest=digest, action="test sent").detail == {"to": "editor@example.com"}


# --- ops console, API and CLI ----------------------------------------------------------------------

def test_ops_start_a_send_and_see_it_finish(operator, digest, django_capture_on_commit_callbacks):
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.APPROVED)
    with django_capture_on_commit_callbacks(execute=True):
        post(operator, "ops-action", digest.pk, "send")
    status = operator.get(reverse("ops-status", args=[digest.pk])).json()
    assert (status["status"], status["sent"], status["remaining"], status["percent"]) == ("sent", 1, 0, 100.0)
    assert status["rate_per_minute"] == 1.0
    assert AuditEntry.objects.get(digest=digest, action="send started").user.username == "ops"


def _sending(digest: Digest) -> None:
    """sending, its rows queued but not yet sent (the batches wait for a commit that never comes)."""
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.APPROVED)
    ops.send(digest.pk)
    assert deliver.progress(digest.pk)["queued"] == 1


def test_ops_pause_resume_and_cancel_from_the_console(operator, digest):
    _sending(digest)
    steps = [("pause", "paused"), ("resume", "sending"), ("cancel", "cancelled")]
    for action, expected in steps:
        post(operator, "ops-action", digest.pk, action)
        digest.refresh_from_db()
        assert digest.status == expected, action
    assert list(digest.audit.order_by("pk").values_list("action", flat=True)) == [
        "send started", "paused", "resumed", "cancelled"]


def test_a_refused_action_says_why(operator, digest):
    response = post(operator, "ops-action", digest.pk, "resume")
    page = operator.get(response["Location"]).content.decode()
    assert f"digest {digest.pk} is draft; only a paused digest can be resumed" in page


def test_retry_requeues_failed_rows_and_sends_them(operator, digest, django_capture_on_commit_callbacks):
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENT)
    subscriber = deliver.eligible_subscribers(digest).get()
    Delivery.objects.create(digest=digest, subscriber=subscriber, status=Delivery.Status.FAILED, attempts=5,
                            last_error="550 mailbox unavailable")
    page = operator.get(reverse("ops-digest", args=[digest.pk])).content.decode()
    assert "550 mailbox unavailable" in page and "Retry 1 failed" in page
    with django_capture_on_commit_callbacks(execute=True):
        post(operator, "ops-action", digest.pk, "retry-failed")
    row = Delivery.objects.get()
    digest.refresh_from_db()
    assert (row.status, row.attempts, digest.status) == ("sent", 1, "sent")


def test_retry_with_nothing_failed_leaves_a_sent_digest_sent(operator, digest):
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENT)
    post(operator, "ops-action", digest.pk, "retry-failed")
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENT and not digest.audit.exists()


def test_the_api_wants_a_valid_token(client, digest):
    url = reverse("api-ops-status", args=[digest.pk])
    assert client.get(url).status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Token forged").status_code == 401


def test_the_api_refuses_a_token_without_the_ops_role(roles, client, digest):
    token = ops.api_token(person("editor"))
    response = client.post(reverse("api-ops-action", args=[digest.pk, "cancel"]), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 403
    digest.refresh_from_db()
    assert digest.status == Digest.Status.DRAFT


def test_the_api_pauses_and_resumes_with_an_ops_token(roles, client, digest):
    token = io.StringIO()
    person("ops")
    call_command("ops", "token", "ops", stdout=token)
    auth = {"HTTP_AUTHORIZATION": f"Token {token.getvalue().strip()}"}
    _sending(digest)
    response = client.post(reverse("api-ops-action", args=[digest.pk, "pause"]), **auth)
    assert response.status_code == 200 and response.json()["status"]["status"] == "paused"
    again = client.post(reverse("api-ops-action", args=[digest.pk, "pause"]), **auth)
    assert again.status_code == 409 and "only a sending digest can be paused" in again.json()["error"]
    assert client.post(reverse("api-ops-action", args=[digest.pk, "resume"]), **auth).status_code == 200
    assert client.get(reverse("api-ops-status", args=[digest.pk]), **auth).json()["status"] == "sending"
    assert digest.audit.get(action="paused").user.username == "ops"


def test_the_ops_cli_reports_status_and_refusals(digest):
    out = io.StringIO()
    call_command("ops", "status", str(digest.pk), stdout=out)
    assert json.loads(out.getvalue())["status"] == "draft"
    with pytest.raises(CommandError, match="only an approved digest can be sent"):
        call_command("ops", "send", str(digest.pk))
    call_command("ops", "cancel", str(digest.pk), stdout=out)
    assert digest.audit.get(action="cancelled").user is None


# --- archive ---------------------------------------------------------------------------------------

def test_the_public_archive_lists_sent_digests_only(client, digest):
    draft = Digest.objects.create(newsletter=digest.newsletter, subject="Unsent draft")
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENT)
    page = client.get(reverse("archive-newsletter", args=[digest.newsletter.slug])).content.decode()
    assert reverse("digest-view", args=[digest.pk]) in page
    assert draft.subject not in page
    assert digest.newsletter.name in client.get(reverse("archive")).content.decode()


def test_a_private_archive_needs_a_login(client, roles, digest):
    Newsletter.objects.filter(pk=digest.newsletter_id).update(public_archive=False)
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENT)
    url = reverse("archive-newsletter", args=[digest.newsletter.slug])
    assert client.get(url)["Location"].startswith("/desk/login/")
    assert digest.newsletter.name not in client.get(reverse("archive")).content.decode()
    assert html.escape(digest.subject) in client_for(person("editor")).get(url).content.decode()


# --- roles, CLI, admin -----------------------------------------------------------------------------

def test_roles_give_editors_and_ops_their_permissions(roles):
    editor_user, ops_user = person("editor"), person("ops", "opal")
    assert editor_user.has_perm(ops.APPROVE) and not editor_user.has_perm(ops.SEND)
    assert ops_user.has_perm(ops.SEND) and not ops_user.has_perm(ops.APPROVE)
    call_command("setup_roles", stdout=io.StringIO())  # idempotent
    assert User.objects.get(username="opal").groups.get().permissions.count() == 10
    with pytest.raises(CommandError, match="unknown role"):
        call_command("setup_roles", "--assign", "opal", "chief")


def test_the_newsletters_cli_creates_a_scheduled_newsletter():
    out = io.StringIO()
    call_command("newsletters", "create", "berlin", "--name", "Berlin Morning", "--cadence", "weekdays",
                 "--time", "06:30", "--timezone", "Europe/Berlin", "--approval", "auto", stdout=out)
    newsletter = Newsletter.objects.get(slug="berlin")
    assert newsletter.periodic_task.crontab.day_of_week == "1-5"
    assert "next: " in out.getvalue()
    with pytest.raises(CommandError, match="cron needs 5 fields"):
        call_command("newsletters", "schedule", "berlin", "--cadence", "cron", "--cron", "7 * *")
    newsletter.refresh_from_db()
    assert newsletter.cadence == "weekdays"  # the refused change was not saved


def test_every_model_has_a_working_admin_list(admin_client, digest):
    from worker import models

    for model in [m for m in vars(models).values() if isinstance(m, type) and issubclass(m, models.models.Model)
                  and m._meta.app_label == "worker" and not m._meta.abstract]:
        assert model in admin.site._registry, model.__name__
        url = reverse(f"admin:worker_{model._meta.model_name}_changelist")
        assert admin_client.get(url).status_code == 200, model.__name__


def test_saving_a_newsletter_in_the_admin_rewrites_its_schedule(rf, admin_user):
    newsletter = Newsletter.objects.create(name="Evening", slug="evening", send_time="18:00", timezone="Asia/Tokyo")
    request = rf.post("/admin/")
    request.user = admin_user
    admin.site._registry[Newsletter].save_model(request, newsletter, form=None, change=True)
    newsletter.refresh_from_db()
    crontab = newsletter.periodic_task.crontab
    assert (crontab.hour, crontab.minute, str(crontab.timezone)) == ("18", "0", "Asia/Tokyo")


def test_the_tick_command_builds_once_per_slot():
    digest = make_digest(stories=1)
    summarized_article(None, "A fresh story")
    out = io.StringIO()
    call_command("newsletters", "tick", digest.newsletter.slug, stdout=out)
    call_command("newsletters", "tick", digest.newsletter.slug, stdout=out)
    assert out.getvalue().count(" built") == 1 and "this slot already has one" in out.getvalue()
    assert digest.newsletter.digests.count() == 2
