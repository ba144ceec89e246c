"""Database rows for tests: a demo-like digest, an approved digest with a subscriber list, a summarized article."""

import os

STORY_SEEDS = [
    ("Riverton opens the rebuilt Harbour Bridge after two years of repairs", "Riverton Gazette",
     "The Harbour Bridge reopened to traffic on Monday after a two-year repair that replaced its corroded "
     "steel cables. The city says the crossing is now rated for heavier lorries and adds a protected cycle lane.",
     "Freight that detoured through the ring road can use the shorter route again, cutting delivery times.",
     [{"name": "Mayor Elena Ruiz", "role": "mayor of Riverton", "action": "cut the ribbon at the reopening"},
      {"name": "Riverton Transport Authority", "role": "operator", "action": "ran the repair programme"}]),
    ("Late-stage trial finds new malaria vaccine cuts infections by 70 percent", "Health Desk",
     "A trial across four countries found that a two-dose malaria vaccine reduced infections in young children "
     "by about 70 percent over a year. Researchers reported no serious side effects.",
     "If regulators approve it, the vaccine could reach clinics before the next rainy season.",
     [{"name": "Dr Amina Okafor", "role": "lead investigator", "action": "presented the results"},
      {"name": "World Health Organization", "role": "regulator", "action": "will review the data"}]),
    ("Dock workers at Port Salvo strike over new shift rules", "Coastal Times",
     "Around 1,200 dock workers walked out at Port Salvo on Wednesday after the operator announced longer "
     "night shifts. Container ships are waiting outside the harbour.",
     "The port handles a fifth of the region's imports, so a long strike would delay goods in shops.",
     [{"name": "Port Salvo Authority", "role": "operator", "action": "announced the new shift rules"},
      {"name": "Dockers' Union", "role": "union", "action": "called the strike"}]),
    ("Twelve-year-old wins national chess championship", "Sports Weekly",
     "Twelve-year-old Leo Marsh became the youngest national chess champion on Sunday, beating three "
     "grandmasters over nine rounds in the capital.",
     "His win earns him a place at next year's world youth championship.",
     [{"name": "Leo Marsh", "role": "player", "action": "won the championship"}]),
    ("Solaris Grid to build Europe's largest battery storage site in Portugal", "Energy Report",
     "Solaris Grid will build a 1.2 gigawatt battery storage site near Sines in Portugal, the largest in "
     "Europe when it opens in 2028. The European Investment Bank will lend 400 million euros.",
     "Storing midday solar power for the evening peak could lower prices for about 600,000 homes.",
     [{"name": "Mette Norgaard", "role": "chief executive, Solaris Grid", "action": "announced the site"},
      {"name": "European Investment Bank", "role": "lender", "action": "agreed a 400 million euro loan"}]),
    ("City council approves new budget for public libraries", "Riverton Gazette",
     "The council voted on Thursday to raise the libraries budget by eight percent, keeping all branches open "
     "on Saturdays and extending evening hours at the central library.",
     "Libraries had warned that two branches would close without extra money.",
     [{"name": "Mayor Elena Ruiz", "role": "mayor of Riverton", "action": "backed the increase"}]),
]


def make_digest(stories: int = 6, **newsletter_fields):
    """A digest like the demo's: realistic stories, one clustered with a second source, one subscriber."""
    from datetime import UTC, datetime, timedelta

    from worker.models import (
        Article,
        Digest,
        DigestItem,
        Newsletter,
        Source,
        Story,
        Subscriber,
        Subscription,
        Summary,
    )

    fields = {"name": "Newsdigest Demo Daily", "slug": "demo", "postal_address": "1 Example Street, Riverton",
              "reply_to": "editor@example.com", **newsletter_fields}
    newsletter = Newsletter.objects.create(**fields)
    start = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    digest = Digest.objects.create(newsletter=newsletter, subject=f"{fields['name']}: the day's news",
                                   period_end=start + timedelta(hours=2), intro="Good morning. Here is the news.")
    for i in range(stories):
        headline, source_name, summary, why, actors = STORY_SEEDS[i % len(STORY_SEEDS)]
        if i >= len(STORY_SEEDS):
            headline = f"{headline} (update {i // len(STORY_SEEDS)})"
        source, _ = Source.objects.get_or_create(name=source_name)
        story = Story.objects.create()
        slug = f"story-{i}"
        article = Article.objects.create(
            source=source, story=story, url=f"https://news.example.com/{slug}", title=headline, text=summary,
            published_at=start - timedelta(minutes=37 * i), content_hash=f"hash-{newsletter.slug}-{i}",
            status=Article.Status.SUMMARIZED)
        if i == 1:
            wire, _ = Source.objects.get_or_create(name="Global Wire")
            Article.objects.create(source=wire, story=story, url=f"https://wire.example.org/{slug}",
                                   title=headline, text=summary, content_hash=f"hash-{newsletter.slug}-{i}-wire")
        item_summary = Summary.objects.create(
            article=article, content_hash=article.content_hash, engine="offline", headline=headline,
            summary=summary, why_it_matters=why, key_actors=actors)
        DigestItem.objects.create(digest=digest, article=article, summary=item_summary, position=i)
    subscriber = Subscriber.objects.create(email=f"ada@{newsletter.slug}.example.com", name="Ada Lovelace",
                                           status=Subscriber.Status.ACTIVE)
    Subscription.objects.create(subscriber=subscriber, newsletter=newsletter, status=Subscription.Status.ACTIVE)
    return digest


def approved_digest(active: int, *, unsubscribed: int = 0, bounced: int = 0, domain: str = "example.com"):
    """A newsletter with an approved digest and `active` confirmed subscribers (user{i}@domain),
    plus unsubscribed ones (unsub{i}@) and bounced ones (bounced{i}@). Returns the digest."""
    from worker.models import Digest, Newsletter, Subscriber, Subscription

    newsletter = Newsletter.objects.create(name="Morning Brief", slug=f"brief-{os.urandom(4).hex()}",
                                           from_email="brief@news.example")
    groups = [("user", active, Subscriber.Status.ACTIVE, Subscription.Status.ACTIVE),
              ("unsub", unsubscribed, Subscriber.Status.ACTIVE, Subscription.Status.UNSUBSCRIBED),
              ("bounced", bounced, Subscriber.Status.BOUNCED, Subscription.Status.ACTIVE)]
    for prefix, count, status, sub_status in groups:
        people = Subscriber.objects.bulk_create(
            [Subscriber(email=f"{prefix}{i}.{newsletter.pk}@{domain}", name=f"Reader {i}", status=status)
             for i in range(count)], batch_size=1000)
        Subscription.objects.bulk_create(
            [Subscription(subscriber=p, newsletter=newsletter, status=sub_status) for p in people], batch_size=1000)
    return Digest.objects.create(newsletter=newsletter, subject="Today's brief", status=Digest.Status.APPROVED)


def summarized_article(source, title: str, *, published=None, story=None, text: str = "", **summary_fields):
    """An article with a stored offline summary, ready for a digest (tests of scheduling and the desk)."""
    import hashlib

    from worker.models import Article, Summary

    text = text or f"{title}. The full account of it."
    article = Article.objects.create(
        source=source, story=story, title=title, text=text, status=Article.Status.SUMMARIZED,
        content_hash=hashlib.sha256(f"{title}|{text}".encode()).hexdigest(), published_at=published,
        url=f"https://news.example/{hashlib.sha1(title.encode()).hexdigest()[:10]}",
    )
    Summary.objects.create(article=article, content_hash=article.content_hash, engine="offline",
                           headline=title, **({"summary": f"Summary of {title}."} | summary_fields))
    return article
