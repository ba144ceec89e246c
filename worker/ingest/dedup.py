"""Duplicates: canonical URLs for exact matches, MinHash/LSH in the database for near-duplicates.

The LSH index is the LshBucket table, so every worker process sees every article and the
index survives restarts; a new article is compared only with the articles that share one of
its band buckets, never with the whole corpus.
"""

import hashlib
import re
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from ..models import Article, LshBucket, Story

if TYPE_CHECKING:
    from datasketch import MinHash

# datasketch is imported where it is used: it loads SciPy, tens of MB that the processes which never
# ingest (delivery workers, the web) need not carry.

NUM_PERM = 128
# Stored signatures are only comparable under one hashing scheme: pinned, not left to datasketch's default.
SCHEME = "affine32"
# Single words: a rewritten wire copy keeps most of its vocabulary but few of its word sequences
# (the demo's two malaria-trial versions: 0.83 on words, 0.63 on 3-word shingles), while different
# stories rarely share more than a fifth of their words.
SHINGLE_WORDS = 1
_TRACKING_PARAMS = {"fbclid", "gclid", "dclid", "gclsrc", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid",
                    "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "ref_src", "ref_url", "cmpid", "ncid", "ocid",
                    "sr_share", "spm", "smid", "s_cid", "share", "xtor", "wt.mc_id", "oly_enc_id", "vero_id"}
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """One spelling per page: lower-case scheme and host, no default port, no fragment, no tracking
    parameters, the remaining query sorted. Not a URL (or no host) comes back as given, stripped."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return url
    scheme = parts.scheme.lower()
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _TRACKING_PARAMS and not k.lower().startswith(_TRACKING_PREFIXES)
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


@lru_cache(maxsize=8)
def lsh_shape(threshold: float) -> tuple[int, int]:
    """(bands, rows per band) around `threshold`, weighted for recall: a false candidate costs one
    signature comparison, a missed one a duplicate story in the digest (0.7 -> 20 x 6: 92% recall at
    the threshold, 98% at 0.75).

    The search is datasketch's documented one: MinHashLSH with weights (0.1, 0.9) picks the shape
    minimising 0.1 x the false-positive area plus 0.9 x the false-negative area under the band
    S-curve, and exposes it as its public `b` and `r`. Only the shape is kept; the index itself lives
    in LshBucket rows, so the empty in-memory one is dropped. Stored buckets depend on this shape:
    tests/ingest/test_dedup.py pins it."""
    from datasketch import MinHashLSH

    index = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, weights=(0.1, 0.9))
    return index.b, index.r


@lru_cache(maxsize=1)
def _permutations() -> tuple[np.ndarray, np.ndarray]:
    """The seed-1 permutations every signature uses; drawing them costs more than hashing a text."""
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME).permutations


def minhash_of(text: str) -> "MinHash":
    from datasketch import MinHash

    words = re.findall(r"\w+", text.lower())
    if len(words) < SHINGLE_WORDS:
        shingles = {" ".join(words)}
    else:
        shingles = {" ".join(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}
    minhash = MinHash(num_perm=NUM_PERM, permutations=_permutations(), scheme=SCHEME)
    minhash.update_batch([s.encode("utf-8") for s in shingles])
    return minhash



def signature_of(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=np.uint64)


def buckets_of(signature: np.ndarray, threshold: float) -> list[tuple[int, str]]:
    bands, rows = lsh_shape(threshold)
    return [(band, hashlib.blake2b(signature[band * rows:(band + 1) * rows].tobytes(), digest_size=16).hexdigest())
            for band in range(bands)]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two MinHash signatures."""
    return float(np.count_nonzero(a == b)) / len(a)


def nearest(signature: np.ndarray, buckets: list[tuple[int, str]], threshold: float,
            exclude_id: int | None = None) -> tuple[int, float] | None:
    """The most similar indexed article at or above `threshold`, among those sharing a bucket."""
    # Raw SQL: building this OR of (band, bucket) pairs through Q objects costs more than running it.
    table = LshBucket._meta.db_table
    where = " OR ".join(["(band = %s AND bucket = %s)"] * len(buckets))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT article_id FROM {table} WHERE {where}",  # noqa: S608 - no user input
                       [value for pair in buckets for value in pair])
        candidates = {row[0] for row in cursor.fetchall()}
    candidates.discard(exclude_id)
    best: tuple[int, float] | None = None
    for article_id, data in Article.objects.filter(pk__in=candidates, minhash__isnull=False).values_list(
            "pk", "minhash"):
        score = similarity(signature, signature_of(data))
        if score >= threshold and (best is None or score > best[1]):
            best = (article_id, score)
    return best


def index_article(article: Article, text: str | None = None) -> int | None:
    """Store the article's MinHash and LSH buckets (replacing old ones) and put it in the story of
    its nearest near-duplicate, creating that story when the second member arrives.

    Returns the story id joined, if any. Call inside the transaction that wrote the article."""
    threshold = settings.NEWSDIGEST_NEAR_DUP_THRESHOLD
    signature = minhash_of(text if text is not None else article.text).hashvalues.astype(np.uint64)
    buckets = buckets_of(signature, threshold)
    with transaction.atomic():
        LshBucket.objects.filter(article=article).delete()
        Article.objects.filter(pk=article.pk).update(minhash=signature.tobytes())
        article.minhash = signature.tobytes()
        found = nearest(signature, buckets, threshold, exclude_id=article.pk)
        LshBucket.objects.bulk_create([LshBucket(article=article, band=b, bucket=h) for b, h in buckets])
        if found is None:
            return None
        return join_story(article, found[0])


def join_story(article: Article, other_id: int) -> int:
    """Put `article` into the story of `other_id`, creating it if `other_id` has none yet."""
    story_id = Article.objects.filter(pk=other_id).values_list("story_id", flat=True).first()
    if story_id is None:
        story = Story.objects.create()
        # Guarded: if another worker clustered `other` meanwhile, join its story and drop ours.
        if Article.objects.filter(pk=other_id, story__isnull=True).update(story=story):
            story_id = story.pk
        else:
            story.delete()
            story_id = Article.objects.filter(pk=other_id).values_list("story_id", flat=True).first()
    Article.objects.filter(pk=article.pk).update(story_id=story_id)
    article.story_id = story_id
    return story_id
