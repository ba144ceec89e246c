"""Near-duplicate clustering cost as the corpus grows (DB-backed MinHash/LSH index, fresh SQLite file).

The corpus is grown in bulk (signatures computed for real, rows bulk-inserted) up to each size;
at each size a probe of new articles goes through the real path (insert the row, dedup.index_article:
bucket lookup, candidate comparison, bucket insert, story join), a fifth of them near-duplicates
of corpus articles. Time per new article should stay flat because only bucket-sharing candidates
are compared.

    .venv/bin/python bench/bench_dedup.py [--sizes 1000,10000,100000] [--probe 200]
"""

import argparse
import itertools
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup_django(db_path: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker.settings")
    os.environ["NEWSDIGEST_VAR_DIR"] = str(db_path.parent)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


VOCAB = [f"w{i}" for i in range(20_000)]
CUM_WEIGHTS = list(itertools.accumulate(1 / (i + 1) for i in range(len(VOCAB))))  # Zipf-like, as in news text


def synthetic_text(rng: random.Random, words: int = 300) -> str:
    return " ".join(rng.choices(VOCAB, cum_weights=CUM_WEIGHTS, k=words))


def near_copy(text: str, rng: random.Random) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), len(words) // 30):
        words[i] = rng.choice(VOCAB)
    return " ".join(words)


def grow(corpus: list[str], target: int, rng: random.Random) -> float:
    """Bulk-add synthetic articles (with their real signatures and buckets) up to `target`."""
    from django.conf import settings

    from worker.ingest import articles, dedup
    from worker.models import Article, LshBucket

    threshold = settings.NEWSDIGEST_NEAR_DUP_THRESHOLD
    started = time.perf_counter()
    while len(corpus) < target:
        batch = []
        for _ in range(min(2000, target - len(corpus))):
            text = synthetic_text(rng)
            corpus.append(text)
            batch.append(text)
        signatures = [dedup.minhash_of(t).hashvalues.astype("uint64") for t in batch]
        articles = Article.objects.bulk_create([
            Article(title=f"a{len(corpus) - len(batch) + i}", text=t, content_hash=articles.content_hash(t),
                    minhash=s.tobytes()) for i, (t, s) in enumerate(zip(batch, signatures, strict=True))])
        LshBucket.objects.bulk_create(
            [LshBucket(article=a, band=b, bucket=h) for a, s in zip(articles, signatures, strict=True)
             for b, h in dedup.buckets_of(s, threshold)], batch_size=5000)
    return time.perf_counter() - started


def probe(corpus: list[str], count: int, rng: random.Random, tag: str) -> tuple[float, int, int]:
    """Real-path indexing of `count` new articles; returns (ms per article, clustered, peak traced bytes)."""
    from django.db import transaction

    from worker.ingest import articles, dedup
    from worker.models import Article

    texts = [near_copy(rng.choice(corpus), rng) if i % 5 == 0 else synthetic_text(rng) for i in range(count)]
    clustered = 0
    tracemalloc.start()
    started = time.perf_counter()
    for i, text in enumerate(texts):
        with transaction.atomic():
            article = Article.objects.create(title=f"{tag}-{i}", text=text, content_hash=articles.content_hash(text))
            clustered += dedup.index_article(article) is not None
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    corpus.extend(texts)
    return elapsed / count * 1000, clustered, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--probe", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        setup_django(db)
        from django.conf import settings

        from worker.ingest import dedup

        bands, rows = dedup.lsh_shape(settings.NEWSDIGEST_NEAR_DUP_THRESHOLD)
        print(f"near-dup threshold {settings.NEWSDIGEST_NEAR_DUP_THRESHOLD}, {dedup.NUM_PERM} permutations, "
              f"LSH {bands} bands x {rows} rows; SQLite file DB; probe {args.probe} new articles per size "
              f"(1 in 5 a near-copy of a corpus article)")
        print(f"{'corpus':>8} {'build s':>8} {'ms/new article':>15} {'clustered':>10} {'probe peak MB':>14} "
              f"{'RSS MB':>8} {'DB MB':>7}")
        rng = random.Random(42)
        corpus: list[str] = []
        for size in (int(s) for s in args.sizes.split(",")):
            build = grow(corpus, size, rng)
            per_article, clustered, peak = probe(corpus, args.probe, rng, f"p{size}")
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{size:>8} {build:>8.1f} {per_article:>15.2f} {clustered:>6}/{args.probe:<3} "
                  f"{peak / 2**20:>14.1f} {rss:>8.0f} {db.stat().st_size / 2**20:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
