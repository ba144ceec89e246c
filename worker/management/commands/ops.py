import json

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from worker import deliver, desk, ops


class Command(BaseCommand):
    help = ("Operate sends: send, pause, resume, cancel, status, retry-failed DIGEST_ID; "
            "token USERNAME prints a key for the ops JSON API (Authorization: Token <key>).")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=[*ops.ACTIONS, "status", "token"])
        parser.add_argument("target", metavar="DIGEST_ID|USERNAME")

    def handle(self, *args, action, target, **options):
        if action == "token":
            user = User.objects.filter(username=target, is_active=True).first()
            if user is None:
                raise CommandError(f"no active user {target!r}")
            if not user.has_perm(desk.SEND):
                raise CommandError(f"{target} has no ops role (newsdigest setup_roles --assign {target} ops)")
            self.stdout.write(desk.api_token(user))
            return
        try:
            digest_id = int(target)
        except ValueError:
            raise CommandError(f"DIGEST_ID must be a number, got {target!r}") from None
        try:
            if action == "status":
                self.stdout.write(json.dumps(ops.status(digest_id), indent=2, default=str))
            else:
                self.stdout.write(ops.perform(action, digest_id))
        except deliver.SendRefused as exc:
            raise CommandError(str(exc)) from None
