import json

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from worker import deliver, ops


class Command(BaseCommand):
    help = ("Operate sends: send, pause, resume, cancel, status, retry-failed DIGEST_ID; "
            "token USERNAME prints a new key for the ops JSON API (Authorization: Token <key>), shown once; "
            "revoke-tokens USERNAME revokes all of a user's keys.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=[*ops.ACTIONS, "status", "token", "revoke-tokens"])
        parser.add_argument("target", metavar="DIGEST_ID|USERNAME")
        parser.add_argument("--days", type=int, default=None,
                            help="token: days until the key expires (default NEWSDIGEST_OPS_TOKEN_DAYS)")

    def handle(self, *args, action, target, days, **options):
        if action == "revoke-tokens":
            user = User.objects.filter(username=target).first()
            if user is None:
                raise CommandError(f"no user {target!r}")
            self.stdout.write(f"{ops.revoke_api_tokens(user)} tokens of {target} revoked")
            return
        if action == "token":
            user = User.objects.filter(username=target, is_active=True).first()
            if user is None:
                raise CommandError(f"no active user {target!r}")
            if not user.has_perm(ops.SEND):
                raise CommandError(f"{target} has no ops role (newsdigest setup_roles --assign {target} ops)")
            if days is not None and days < 1:
                raise CommandError("--days must be at least 1")
            self.stdout.write(ops.api_token(user, days))
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
