from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from worker.models import Digest

# Not model Meta permissions (that would need a migration): rows made here, on the Digest content type.
CUSTOM_PERMISSIONS = {
    "approve_digest": "Can approve a digest for sending",
    "send_digest": "Can send, pause, resume, cancel and retry digests",
    "set_approval_mode": "Can switch a newsletter between editor approval and automatic sending",
}
EDITOR = ["view_digest", "change_digest", "approve_digest", "view_digestitem", "change_digestitem",
          "view_article", "view_summary", "view_newsletter", "view_auditentry"]
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


def ensure_roles() -> dict[str, Group]:
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
                    raise CommandError(f"role {role}: no permission {', '.join(sorted(missing))} in {app} "
                                       f"(run `newsdigest migrate` first)")
            permissions += list(in_app)
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(permissions)
        groups[role] = group
    return groups


class Command(BaseCommand):
    help = "Create the editor, ops and admin groups with their permissions (idempotent); optionally assign users."

    def add_arguments(self, parser):
        parser.add_argument("--assign", nargs=2, action="append", default=[], metavar=("USERNAME", "ROLE"),
                            help="put an existing user in a role (and let them into the admin); repeatable")

    @transaction.atomic
    def handle(self, *args, assign, **options):
        groups = ensure_roles()
        for role, group in groups.items():
            self.stdout.write(f"role {role}: {group.permissions.count()} permissions")
        for username, role in assign:
            if role not in groups:
                raise CommandError(f"unknown role {role!r}; choose one of {', '.join(groups)}")
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user {username!r} (create it with `newsdigest createsuperuser` "
                                   f"or in the admin)")
            user.groups.add(groups[role])
            User.objects.filter(pk=user.pk).update(is_staff=True)
            self.stdout.write(f"{username} is now {role}")
