"""Exact and near-duplicate detection; near-duplicates share one Story, through the DB-backed LSH index."""

import random
from pathlib import Path

import pytest

from worker.ingest import articles, dedup
from worker.models import Article, LshBucket, Story

WORDS = [f"term{i}" for i in range(3000)]


def article_text(seed: int, n: int = 400) -> str:
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(n)]
    return "\n\n".join(" ".join(words[i:i + 50]) + "." for i in range(0, n, 50))


def reworded(text: str, seed: int, fraction: float) -> str:
    """The same story with `fraction` of its words changed, as a wire copy edited by another desk."""
    rng = random.Random(seed)
    words = text.split(" ")
    for i in rng.sample(range(len(words)), int(len(words) * fraction)):
        words[i] = "edited"
    return " ".join(words)


@pytest.mark.parametrize(("url", "canonical"), [
    ("https://News.Example.COM/a/b?utm_source=rss&utm_medium=x&id=3#comments", "https://news.example.com/a/b?id=3"),
    ("http://example.com:80/x?fbclid=abc&gclid=def", "http://example.com/x"),
    ("https://example.com:8443/x?b=2&a=1&mc_cid=9", "https://example.com:8443/x?a=1&b=2"),
    ("https://example.com", "https://example.com/"),
    ("not a url", "not a url"),
])
def test_canonical_url_drops_tracking_fragment_and_case(url, canonical):
    assert dedup.canonical_url(url) == canonical


@pytest.mark.django_db
def test_tracking_variants_of_one_url_are_one_article():
    first = articles.ingest_article(title="A", text=article_text(1), url="https://ex.com/s?utm_campaign=x")
    again = articles.ingest_article(title="A", text=article_text(1), url="https://EX.com/s?fbclid=1#top")
    assert (again.created, again.article.pk) == (False, first.article.pk)


@pytest.mark.django_db
def test_text_differing_only_in_case_and_spacing_is_an_exact_duplicate():
    first = articles.ingest_article(title="A", text=article_text(2))
    again = articles.ingest_article(title="A", text="  " + article_text(2).upper().replace(" ", "   "))
    assert (again.created, again.article.pk) == (False, first.article.pk)


@pytest.mark.django_db
def test_near_duplicates_join_one_story_created_with_the_second_member():
    original = articles.ingest_article(title="Wire", text=article_text(3), url="https://a.example/1").article
    assert Article.objects.get(pk=original.pk).story_id is None
    copy = articles.ingest_article(title="Desk", text=reworded(article_text(3), 1, 0.03), url="https://b.example/2")
    third = articles.ingest_article(title="Web", text=reworded(article_text(3), 2, 0.03), url="https://c.example/3")
    story = Story.objects.get()
    assert set(story.articles.values_list("pk", flat=True)) == {original.pk, copy.article.pk, third.article.pk}


@pytest.mark.django_db
def test_different_stories_stay_apart():
    articles.ingest_article(title="One", text=article_text(4))
    articles.ingest_article(title="Two", text=article_text(5))
    assert not Story.objects.exists()
    assert not Article.objects.filter(story__isnull=False).exists()


@pytest.mark.django_db
def test_the_threshold_is_configurable(settings):
    settings.NEWSDIGEST_NEAR_DUP_THRESHOLD = 0.95
    articles.ingest_article(title="One", text=article_text(6))
    articles.ingest_article(title="Two", text=reworded(article_text(6), 3, 0.1))
    assert not Story.objects.exists()


# The shapes datasketch's private _optimal_param(threshold, 128, 0.1, 0.9) gave before lsh_shape used
# MinHashLSH's public b and r: stored LshBucket rows are only comparable under the same shape.
@pytest.mark.parametrize(("threshold", "shape"), [
    (0.5, (32, 4)), (0.6, (25, 5)), (0.7, (20, 6)), (0.8, (14, 9)), (0.85, (11, 11)), (0.9, (8, 16))])
def test_the_lsh_shape_is_the_one_the_stored_buckets_were_made_with(threshold, shape):
    assert dedup.lsh_shape(threshold) == shape


@pytest.mark.django_db
def test_the_index_is_persisted_per_article():
    article = articles.ingest_article(title="One", text=article_text(7)).article
    bands, _ = dedup.lsh_shape(0.7)
    assert LshBucket.objects.filter(article=article).count() == bands
    assert len(bytes(Article.objects.get(pk=article.pk).minhash)) == dedup.NUM_PERM * 8


@pytest.mark.django_db
def test_candidates_come_from_shared_buckets_not_a_scan():
    """An article whose buckets were removed is invisible to the index, so no all-pairs comparison happens."""
    hidden = articles.ingest_article(title="Hidden", text=article_text(8)).article
    LshBucket.objects.filter(article=hidden).delete()
    articles.ingest_article(title="Copy", text=reworded(article_text(8), 4, 0.03))
    assert not Story.objects.exists()


@pytest.mark.django_db
def test_an_update_recomputes_the_signature_and_buckets():
    first = articles.ingest_article(title="One", text=article_text(9), url="https://ex.com/one").article
    old = set(LshBucket.objects.filter(article=first).values_list("bucket", flat=True))
    articles.ingest_article(title="One", text=article_text(10), url="https://ex.com/one")
    new = set(LshBucket.objects.filter(article=first).values_list("bucket", flat=True))
    assert new and not old & new


def test_similarity_estimate_tracks_the_real_overlap():
    a, b = dedup.minhash_of(article_text(11)), dedup.minhash_of(reworded(article_text(11), 5, 0.02))
    other = dedup.minhash_of(article_text(12))
    assert dedup.similarity(a.hashvalues, b.hashvalues) > 0.8
    assert dedup.similarity(a.hashvalues, other.hashvalues) < 0.3


@pytest.mark.django_db
def test_the_demo_wire_rewrite_joins_the_original_story():
    demo = Path(articles.__file__).parents[1] / "demo_data"
    (original,) = articles.ingest_file(demo / "02-vaccine-trial.txt")
    (rewrite,) = articles.ingest_file(demo / "03-vaccine-trial-wire.txt")
    (other,) = articles.ingest_file(demo / "04-port-strike.txt")
    original.article.refresh_from_db()
    assert original.article.story_id is not None
    assert rewrite.article.story_id == original.article.story_id
    assert Article.objects.get(pk=other.article.pk).story_id is None
