"""The ops stage: who may do what, the keys of the ops API, and the actions on a digest.

Roles are Django groups made by `ensure_roles` (`newsdigest setup_roles`); code checks permissions,
never group names: editors need EDIT (and APPROVE to approve), ops SEND. The web, the admin and the
`ops` command all take the permissions, the landing page per role and the API keys from here.

The actions are one function each, shared by the ops console, `newsdigest ops` and the token API, so
all three refuse the same things with the same words and leave the same audit trail. Every refusal
is a deliver.SendRefused carrying the reason.
"""

import hmac
import secrets
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from . import audit, deliver, jobs
from .models import ApiToken, Delivery, Digest, hash_token

Actor = User | AnonymousUser | None

# --- roles and permissions -------------------------------------------------------------------------

EDIT = "worker.change_digest"
APPROVE = "worker.approve_digest"
SEND = "worker.send_digest"
# Switching a newsletter between editor approval and automatic sending.
SET_APPROVAL = "worker.set_approval_mode"

# Not model Meta permissions (that would need a migration): rows made by ensure_roles, on the Digest
# content type.
CUSTOM_PERMISSIONS = {
    "approve_digest": "Can approve a digest for sending",
    "send_digest": "Can send, pause, resume, cancel and retry digests",
    "set_approval_mode": "Can switch a newsletter between editor approval and automatic sending",
}
EDITOR = ["view_digest", "change_digest", "approve_digest", "view_digestitem", "change_digestitem",
          "view_article", "view_summary", "view_newsletter", "view_auditentry"]
# Least privileged first: role_needed names the first role that holds a permission.
ROLES: dict[str, dict[str, list[str]]] = {
    "editor": {"worker": EDITOR},
    # Decides whether a newsletter may go out without an editor's approval.
    "editor-in-chief": {"worker": [*EDITOR, "change_newsletter", "set_approval_mode"]},
    # Newsletter schedules are edited on the newsletter (which rewrites its beat task); a beat task edited
    # directly could run any task with any arguments, so ops only look at them.
    "ops": {
        "worker": ["view_digest", "send_digest", "view_delivery", "view_newsletter",
                   "change_newsletter", "view_subscriber", "view_suppressionevent", "view_auditentry"],
        "django_celery_beat": ["view_periodictask", "view_crontabschedule"],
    },
    # Everything in these apps.
    "admin": {"worker": ["*"], "django_celery_beat": ["*"], "auth": ["*"]},
}


class UnknownPermission(LookupError):
    """A role names a permission the database does not have (migrations not run)."""


def ensure_roles() -> dict[str, Group]:
    """Create or update one group per role with exactly its permissions (idempotent)."""
    digest_type = ContentType.objects.get_for_model(Digest)
    for codename, name in CUSTOM_PERMISSIONS.items():
        Permission.objects.update_or_create(codename=codename, content_type=digest_type, defaults={"name": name})
    groups = {}
    for role, apps in ROLES.items():
        permissions = []
        for app, codenames in apps.items():
            in_app = Permission.objects.filter(content_type__app_label=app)
            if codenames != ["*"]:
                in_app = in_app.filter(codename__in=codenames)
                missing = set(codenames) - set(in_app.values_list("codename", flat=True))
                if missing:
                    raise UnknownPermission(f"role {role}: no permission {', '.join(sorted(missing))} in {app} "
                                            f"(run `newsdigest migrate` first)")
            permissions += list(in_app)
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(permissions)
        groups[role] = group
    return groups


def role_needed(permission: str) -> str:
    """The role a refusal names: the least privileged one that holds `permission`."""
    app, _, codename = permission.partition(".")
    return next(role for role, apps in ROLES.items() if codename in apps.get(app, []))


def landing_page(user: User) -> str:
    """URL name of each role's start page: the admin's is the admin site, an editor's the drafts,
    ops' the console, anyone else's the archive."""
    if user.is_superuser or user.has_perm("auth.change_user"):
        return "admin:index"
    if user.has_perm(EDIT):
        return "desk"
    if user.has_perm(SEND):
        return "ops"
    return "archive"


# --- ops API keys ----------------------------------------------------------------------------------

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


def token_user(key: str) -> User | None:
    """The active user a live key belongs to; None for an unknown, expired or revoked key, or one
    issued before the user's last password change."""
    token = (ApiToken.objects.select_related("user")
             .filter(key_hash=hash_token(key), revoked_at__isnull=True, expires_at__gt=timezone.now(),
                     user__is_active=True).first())
    if token is None or not hmac.compare_digest(token.password_marker, _password_marker(token.user)):
        return None
    return token.user


# --- actions on a digest ---------------------------------------------------------------------------

ACTIONS = ("send", "pause", "resume", "cancel", "retry-failed")
# The send rate is measured over this trailing window.
RATE_WINDOW = timedelta(seconds=60)


def _who(user: Actor) -> str:
    return user.get_username() if user is not None and user.is_authenticated else "the command line"


def send(digest_id: int, user: Actor = None) -> str:
    """approved -> sending now (a clear refusal otherwise); the fan-out runs on the workers."""
    deliver.start_or_stay_approved(digest_id, partial(jobs.enqueue, jobs.Job.START_SEND))
    audit.record(digest_id, user, "send started")
    return f"digest {digest_id}: sending"


def pause(digest_id: int, user: Actor = None) -> str:
    deliver.pause(digest_id, reason=f"paused by {_who(user)}")
    audit.record(digest_id, user, "paused")
    return f"digest {digest_id}: paused"


def resume(digest_id: int, user: Actor = None) -> str:
    batches = deliver.resume(digest_id)
    audit.record(digest_id, user, "resumed")
    deliver.publish_batches(batches)
    return f"digest {digest_id}: sending again"


def cancel(digest_id: int, user: Actor = None) -> str:
    skipped = deliver.cancel(digest_id)
    audit.record(digest_id, user, "cancelled", skipped=skipped)
    return f"digest {digest_id}: cancelled, {skipped} deliveries skipped"


def retry_failed(digest_id: int, user: Actor = None) -> str:
    """failed rows -> queued with a fresh attempt budget, then nudged to the workers.

    A digest already `sent` is reopened (sent -> sending) for the retry; it closes again when the
    retried rows are final. Refused for drafts, cancelled digests and when nothing failed.
    """
    with transaction.atomic():
        Digest.transition(digest_id, from_status=Digest.Status.SENT, to_status=Digest.Status.SENDING, sent_at=None)
        status = Digest.objects.filter(pk=digest_id).values_list("status", flat=True).first()
        if status not in (Digest.Status.SENDING, Digest.Status.PAUSED):
            raise deliver.SendRefused(f"digest {digest_id} is {status or 'missing'}; "
                                      f"only a sending, paused or sent digest has deliveries to retry")
        requeued = Delivery.objects.filter(digest_id=digest_id).transition(
            from_status=Delivery.Status.FAILED, to_status=Delivery.Status.QUEUED, attempts=0, lease_until=None,
            claimed_by="")
        if not requeued:
            # Rolls the reopening back too: a sent digest with nothing to retry stays sent.
            raise deliver.SendRefused(f"digest {digest_id} has no failed deliveries to retry")
        audit.record(digest_id, user, "retried failed deliveries", requeued=requeued)
    deliver.publish_batches(deliver.nudge(digest_id))
    return f"digest {digest_id}: {requeued} failed deliveries queued again"


def perform(action: str, digest_id: int, user: Actor = None) -> str:
    handlers = {"send": send, "pause": pause, "resume": resume, "cancel": cancel, "retry-failed": retry_failed}
    if action not in handlers:
        raise deliver.SendRefused(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    return handlers[action](digest_id, user)


def status(digest_id: int) -> dict:
    """deliver.report plus the recent send rate and percentage, for the console's polling and the API."""
    report = deliver.report(digest_id)
    since = timezone.now() - RATE_WINDOW
    recent = Delivery.objects.filter(digest_id=digest_id, status=Delivery.Status.SENT, sent_at__gte=since).count()
    total = report["total"]
    done = total - report["remaining"]
    return {**report, "rate_per_minute": round(recent * 60 / RATE_WINDOW.total_seconds(), 1),
            "percent": round(100 * done / total, 1) if total else (100.0 if report["status"] == "sent" else 0.0)}
