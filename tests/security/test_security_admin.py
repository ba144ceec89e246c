"""Issue 13.2 and 12: the admin is no way around approval, the stage functions or the audit trail."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.helpers.factories import make_digest
from worker.models import AuditEntry, Digest, Newsletter, Subscriber

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def client_as(role: str) -> Client:
    User.objects.create_user(role, f"{role}@example.com", "a-long-password")
    call_command("setup_roles", "--assign", role, role, stdout=io.StringIO())
    client = Client()
    client.force_login(User.objects.get(username=role))
    return client


def form_data(response) -> dict:
    """What the admin change form would post back unchanged (inline formsets left out)."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if hasattr(field.widget, "widgets"):
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{i}"] = "" if part is None else str(part)
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    for inline in response.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data |= {f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0}
    return data


def change_url(obj) -> str:
    return reverse(f"admin:worker_{obj._meta.model_name}_change", args=[obj.pk])


@pytest.fixture
def draft() -> Digest:
    digest = make_digest(stories=2)
    digest.newsletter.subscriptions.update(status="active")
    Subscriber.objects.update(status="active")
    return digest


def test_an_editor_cannot_approve_a_draft_by_editing_its_status_in_the_admin(draft):
    editor = client_as("editor")
    url = change_url(draft)
    data = form_data(editor.get(url)) | {"status": "sending", "send_started_at_0": "2026-01-01",
                                         "send_started_at_1": "00:00", "approved_by": "1", "subject": "New subject"}
    assert editor.post(url, data).status_code == 302
    draft.refresh_from_db()
    assert (draft.status, draft.send_started_at, draft.approved_by) == ("draft", None, None)
    assert draft.subject == "New subject"  # the draft's text is the editor's to change, audited:
    assert AuditEntry.objects.filter(digest=draft, action="edited in the admin").exists()


def test_an_editor_cannot_cancel_or_send_through_admin_actions(draft):
    editor = client_as("editor")
    Digest.objects.filter(pk=draft.pk).update(status=Digest.Status.APPROVED)
    for action in ("cancel_digests", "send_digests"):
        editor.post(reverse("admin:worker_digest_changelist"), {"action": action, "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.status == Digest.Status.APPROVED


def test_an_admin_approval_goes_through_the_stage_function_with_an_audit_entry(draft):
    editor = client_as("editor")
    editor.post(reverse("admin:worker_digest_changelist"), {"action": "approve_drafts",
                                                            "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.status == Digest.Status.APPROVED and draft.approved_by.username == "editor"
    assert AuditEntry.objects.filter(digest=draft, action="approved", user__username="editor").exists()


def test_ops_cannot_approve_a_draft_through_admin_actions(draft):
    ops = client_as("ops")
    ops.post(reverse("admin:worker_digest_changelist"), {"action": "approve_drafts", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.status == Digest.Status.DRAFT


def test_an_editor_cannot_rewrite_a_sent_issue(draft):
    Digest.objects.filter(pk=draft.pk).update(status=Digest.Status.SENT)
    editor = client_as("editor")
    response = editor.post(change_url(draft), {"subject": "Rewritten", "intro": "Rewritten"})
    item = draft.items.first()
    item_response = editor.post(change_url(item), {"digest": draft.pk, "article": item.article_id,
                                                   "position": 0, "headline_override": "Rewritten"})
    draft.refresh_from_db()
    item.refresh_from_db()
    assert response.status_code == 403 and item_response.status_code == 403
    assert draft.subject != "Rewritten" and item.headline_override != "Rewritten"


def test_an_admin_cannot_delete_a_sent_issue(draft):
    Digest.objects.filter(pk=draft.pk).update(status=Digest.Status.SENT)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", "a-long-password"))
    admin.post(reverse("admin:worker_digest_changelist"), {"action": "delete_selected",
                                                           "_selected_action": [draft.pk], "post": "yes"})
    assert Digest.objects.filter(pk=draft.pk).exists()


def test_an_admin_cannot_unsuppress_a_bounced_subscriber_by_editing_its_status(draft):
    person = Subscriber.objects.get()
    Subscriber.objects.filter(pk=person.pk).update(status=Subscriber.Status.BOUNCED)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", "a-long-password"))
    data = form_data(admin.get(change_url(person))) | {"status": "active", "email": "stranger@example.org"}
    assert admin.post(change_url(person), data).status_code == 302
    person.refresh_from_db()
    assert (person.status, person.email) == (Subscriber.Status.BOUNCED, person.email)
    assert person.email != "stranger@example.org"


def test_nobody_can_forge_or_erase_the_audit_trail(draft):
    AuditEntry.objects.create(digest=draft, action="approved")
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", "a-long-password"))
    entry = AuditEntry.objects.get()
    assert admin.post(reverse("admin:worker_auditentry_add"), {"action": "approved"}).status_code == 403
    assert admin.post(reverse("admin:worker_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.count() == 1


def test_ops_cannot_switch_a_newsletter_to_automatic_sending(draft):
    ops = client_as("ops")
    newsletter = draft.newsletter
    data = form_data(ops.get(change_url(newsletter))) | {"approval": "auto", "send_if_unapproved": "on"}
    assert ops.post(change_url(newsletter), data).status_code == 302
    newsletter.refresh_from_db()
    assert (newsletter.approval, newsletter.send_if_unapproved) == (Newsletter.Approval.EDITOR, False)


def test_an_editor_in_chief_switches_approval_mode_with_an_audit_entry(draft):
    chief = client_as("editor-in-chief")
    newsletter = draft.newsletter
    data = form_data(chief.get(change_url(newsletter))) | {"approval": "auto"}
    assert chief.post(change_url(newsletter), data).status_code == 302
    newsletter.refresh_from_db()
    assert newsletter.approval == Newsletter.Approval.AUTO
    assert AuditEntry.objects.get(action="changed approval mode").detail["approval"] == "auto"


def test_ops_cannot_rewrite_beat_tasks_to_run_arbitrary_tasks():
    ops_user = User.objects.create_user("ops", "ops@example.com", "a-long-password")
    call_command("setup_roles", "--assign", "ops", "ops", stdout=io.StringIO())
    ops_user = User.objects.get(pk=ops_user.pk)
    assert ops_user.has_perm("django_celery_beat.view_periodictask")
    assert not ops_user.has_perm("django_celery_beat.change_periodictask")
    assert not ops_user.has_perm("django_celery_beat.add_periodictask")
