import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from worker import deliver, render, schedule, summarize, tasks
from worker.ingest import articles
from worker.models import Digest, Newsletter, Source, Subscriber, Subscription

DEMO_DATA = Path(__file__).resolve().parents[2] / "demo_data"
DEMO_SUBSCRIBERS = [
    ("ada@example.com", "Ada Lovelace"),
    ("grace@example.com", "Grace Hopper"),
    ("linus@example.com", ""),
]


class Command(BaseCommand):
    help = "Run the whole pipeline on bundled demo articles: ingest, summarize, build, send to the outbox."

    def handle(self, *args, **options):
        started = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        newsletter, _ = Newsletter.objects.get_or_create(
            slug="demo", defaults={"name": "Newsdigest Demo Daily", "postal_address": "1 Example Street, Riverton",
                                   "approval": Newsletter.Approval.AUTO})
        source, _ = Source.objects.get_or_create(name="Demo Wire", defaults={"newsletter": newsletter})
        for email, name in DEMO_SUBSCRIBERS:
            subscriber, _ = Subscriber.objects.get_or_create(
                email=email, defaults={"name": name, "status": Subscriber.Status.ACTIVE})
            Subscription.objects.get_or_create(subscriber=subscriber, newsletter=newsletter,
                                               defaults={"status": Subscription.Status.ACTIVE})

        new = 0
        for path in sorted(DEMO_DATA.iterdir()):
            for result in articles.ingest_file(path, source):
                if result.created:
                    new += 1
                    tasks.summarize_article.delay(result.article.pk)
        for article_id in summarize.pending_article_ids():
            tasks.summarize_article.delay(article_id)

        try:
            digest = schedule.build_digest(newsletter)
            schedule.approve(digest.pk)
            tasks.start_send.delay(digest.pk)
            digest.refresh_from_db()
        except schedule.NothingToSend:
            digest = newsletter.digests.exclude(status=Digest.Status.CANCELLED).order_by("-pk").first()
            self.stdout.write("no new stories since the last demo run; nothing new was sent")

        self.stdout.write(f"articles: {new} new this run, {source.article_set.count()} in the demo source")
        if digest is None:
            return
        preview = settings.OUTBOX_DIR / f"digest-{digest.pk}-preview.html"
        preview.parent.mkdir(parents=True, exist_ok=True)
        preview.write_text(render.for_archive(render.ensure_rendered(digest)).html, encoding="utf-8")
        progress = deliver.progress(digest.pk)
        self.stdout.write(f"digest {digest.pk} ({digest.status}): {digest.subject}")
        self.stdout.write(f"stories: {digest.items.count()}; deliveries: {progress['sent']} sent, "
                          f"{progress['failed']} failed, {progress['remaining']} remaining")
        self.stdout.write(f"outbox:  {settings.OUTBOX_DIR} ({len(list(settings.OUTBOX_DIR.glob('*.eml')))} .eml files)")
        self.stdout.write(f"preview: {preview}")
        self.stdout.write(f"done in {time.perf_counter() - started:.1f}s")
