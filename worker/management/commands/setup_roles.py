from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from worker import ops


class Command(BaseCommand):
    help = "Create the editor, ops and admin groups with their permissions (idempotent); optionally assign users."

    def add_arguments(self, parser):
        parser.add_argument("--assign", nargs=2, action="append", default=[], metavar=("USERNAME", "ROLE"),
                            help="put an existing user in a role (and let them into the admin); repeatable")

    @transaction.atomic
    def handle(self, *args, assign, **options):
        try:
            groups = ops.ensure_roles()
        except ops.UnknownPermission as exc:
            raise CommandError(str(exc)) from None
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
