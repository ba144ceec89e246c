from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from worker import render, schedule, screenshot
from worker.models import Digest, Newsletter, Subscriber


class Command(BaseCommand):
    help = "Build, list, approve and preview digests."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        build = sub.add_parser("build", help="make a draft from stories not yet in a digest")
        build.add_argument("newsletter", metavar="NEWSLETTER", help="newsletter slug")
        sub.add_parser("list", help="recent digests and their status")
        approve = sub.add_parser("approve", help="approve a draft for sending")
        approve.add_argument("digest_id", type=int, metavar="ID")
        preview = sub.add_parser("preview", help="write the exact HTML (or text) that would be mailed")
        preview.add_argument("digest_id", type=int, metavar="ID")
        preview.add_argument("--out", required=True, metavar="FILE|DIR")
        preview.add_argument("--text", action="store_true", help="the plain-text part instead of HTML")
        preview.add_argument("--subscriber", metavar="EMAIL", help="personalise for this subscriber")
        shot = sub.add_parser("screenshot", help="PNGs of the HTML at phone and desktop widths (headless Chromium)")
        shot.add_argument("digest_id", type=int, metavar="ID")
        shot.add_argument("--out", required=True, metavar="DIR")
        shot.add_argument("--subscriber", metavar="EMAIL", help="personalise for this subscriber")

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(**options)

    def do_build(self, newsletter, **_):
        try:
            letter = Newsletter.objects.get(slug=newsletter)
        except Newsletter.DoesNotExist:
            raise CommandError(f"no newsletter with slug {newsletter!r}") from None
        try:
            digest = schedule.build_digest(letter)
        except schedule.NothingToSend as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"digest {digest.pk}: {digest.subject} ({digest.items.count()} stories, draft)")

    def do_list(self, **_):
        for digest in Digest.objects.select_related("newsletter").order_by("-pk")[:20]:
            self.stdout.write(f"{digest.pk:>5}  {digest.status:<9}  {digest.newsletter.slug:<16}  {digest.subject}")

    def do_approve(self, digest_id, **_):
        if not schedule.approve(digest_id):
            raise CommandError(f"digest {digest_id} is not a draft")
        self.stdout.write(f"digest {digest_id} approved")

    def do_preview(self, digest_id, out, text, subscriber, **_):
        rendered = _rendered(digest_id, subscriber)
        target = Path(out)
        if target.is_dir():  # a folder, as `digest screenshot --out DIR` takes: the file goes inside
            target = target / f"digest-{digest_id}.{'txt' if text else 'html'}"
        try:
            # newline="" keeps the bytes as mailed (no platform newline translation).
            with open(target, "w", encoding="utf-8", newline="") as handle:
                handle.write(rendered.text if text else rendered.html)
        except OSError as exc:
            fix = "create the folder first" if isinstance(exc, FileNotFoundError) else "choose a writable path"
            raise CommandError(f"cannot write {target}: {exc.strerror}; {fix}") from None
        self.stdout.write(f"wrote {target}")

    def do_screenshot(self, digest_id, out, subscriber, **_):
        try:
            shots = screenshot.capture(_rendered(digest_id, subscriber).html, Path(out), stem=f"digest-{digest_id}")
        except screenshot.ChromiumMissing as exc:
            raise CommandError(str(exc)) from None
        for shot in shots:
            self.stdout.write(f"wrote {shot.path}: {shot.width}px wide, page {shot.scroll_width}px, "
                              f"{shot.headlines} headlines")
        if bad := [shot for shot in shots if not shot.ok]:
            raise CommandError("; ".join(
                f"{shot.width}px: page is {shot.scroll_width}px wide, hidden headlines {shot.hidden_headlines}"
                for shot in bad))


def _rendered(digest_id: int, subscriber: str | None) -> render.RenderedEmail:
    """The HTML/text as mailed to `subscriber`, or the browser copy when none is named."""
    digest = _get_digest(digest_id)
    rendered = render.ensure_rendered(digest)
    if not subscriber:
        return render.for_archive(rendered)
    try:
        return render.personalise(rendered, digest, Subscriber.objects.get(email=subscriber))
    except Subscriber.DoesNotExist:
        raise CommandError(f"no subscriber {subscriber}") from None


def _get_digest(digest_id: int) -> Digest:
    try:
        return Digest.objects.select_related("newsletter").get(pk=digest_id)
    except Digest.DoesNotExist:
        raise CommandError(f"no digest {digest_id}") from None
