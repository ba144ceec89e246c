"""Who did what to a digest, and when: one AuditEntry per editor, ops or scheduler action."""

from django.contrib.auth.models import AnonymousUser, User

from .models import AuditEntry


def record(digest_id: int | None, user: User | AnonymousUser | None, action: str, **detail) -> AuditEntry:
    """`user` None (or anonymous) means the scheduler or the CLI acted, not a person logged in."""
    actor = user if user is not None and user.is_authenticated else None
    return AuditEntry.objects.create(digest_id=digest_id, user=actor, action=action, detail=detail)


def trail(digest_id: int) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(digest_id=digest_id).select_related("user"))


def describe(entry: AuditEntry) -> str:
    """One readable line, e.g. `edited item 3: headline`, for the desk and the CLI."""
    parts = [f"{k}={v}" for k, v in entry.detail.items()]
    return f"{entry.action} ({', '.join(parts)})" if parts else entry.action
