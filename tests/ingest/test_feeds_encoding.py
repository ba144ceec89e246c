"""Real feeds in legacy encodings (feedparser's corpus, BSD-2, see tests/data/feeds/ATTRIBUTION.md),
served over HTTP with and without a charset: the stored title is the exact Unicode text. HTML entities
in a well-formed feed are no malformation; a malformed feed is reported once per change."""


import pytest

from tests.helpers.http_server import http_server
from tests.helpers.paths import DATA
from tests.ingest.feed_builders import rss2, text
from worker.ingest import feeds
from worker.models import Article, IngestRejection, Source

FEED_DIR = DATA / "feeds"


def feed_bytes(name: str, recode_to: str = "") -> bytes:
    """A corpus feed, re-encoded when the family's other code page is wanted (windows-1251, windows-874)."""
    name, _, source = name.partition(">")
    raw = (FEED_DIR / f"{name}.xml").read_bytes()
    return raw.decode(source).encode(recode_to) if recode_to else raw


# (corpus file[>its encoding], encode as, HTTP charset, exact stored title)
FEEDS = [
    ("koi8r", "", "koi8-r", "Как пережить новогоднюю ночь"),
    ("koi8r>koi8_r", "cp1251", "windows-1251", "Как пережить новогоднюю ночь"),
    ("shiftjis", "", "shift_jis", "DrecomRSSに記事投稿が反映されない…"),
    ("eucjp", "", "euc-jp", "ゲーム三昧な正月"),
    ("euckr", "", "euc-kr", "EUC-KR 에서 TypeKey 한글닉네임 표시하기"),
    ("tis620", "", "tis-620",
     "สำนักงานส่งเสริมอุตสาหกรรมซอฟต์แวร์แห่งชาติ หรือ SIPA ร่วมกับ MamboHub.com…"),
    ("tis620>tis_620", "cp874", "windows-874",
     "สำนักงานส่งเสริมอุตสาหกรรมซอฟต์แวร์แห่งชาติ หรือ SIPA ร่วมกับ MamboHub.com…"),
    ("windows1255", "", "windows-1255",
     "האם תדפיס נייר של אתר אינטרנט שמוצג על מסך משתמש הוא העתק נאמן למקור של אתר האינטרנט? רבים יגידו שכן"),
]


def poll(body: bytes, content_type: str, times: int = 1) -> tuple[feeds.PollReport, Source]:
    with http_server({"/feed": (200, {"Content-Type": content_type}, body)}) as (base, _):
        source = Source.objects.create(name="Feed", kind=Source.Kind.FEED, url=f"{base}/feed")
        for _ in range(times):
            report = feeds.poll_source(source, force=True)
    return report, source


@pytest.mark.django_db
@pytest.mark.parametrize("declared", [True, False], ids=["http-charset", "no-charset"])
@pytest.mark.parametrize(("name", "recode", "charset", "title"), FEEDS, ids=[f[2] for f in FEEDS])
def test_a_legacy_encoded_feed_stores_the_exact_title(allow_local, name, recode, charset, title, declared):
    content_type = f"application/rss+xml; charset={charset}" if declared else "application/rss+xml"
    report, _ = poll(feed_bytes(name, recode), content_type)
    assert (report.new, report.error) == (1, "")
    assert Article.objects.get().title == title


@pytest.mark.django_db
def test_the_http_charset_beats_a_wrong_xml_declaration(allow_local):
    body = feed_bytes("koi8r>koi8_r", "cp1251").replace(b"<rss>", b'<?xml version="1.0" encoding="koi8-r"?><rss>')
    poll(body, "text/xml; charset=windows-1251")
    assert Article.objects.get().title == "Как пережить новогоднюю ночь"


@pytest.mark.django_db
def test_a_charset_that_fails_to_decode_is_replaced_by_detection(allow_local):
    poll(feed_bytes("euckr"), "application/rss+xml; charset=utf-8")
    assert Article.objects.get().title == "EUC-KR 에서 TypeKey 한글닉네임 표시하기"


@pytest.mark.django_db
def test_html_entities_in_a_well_formed_feed_are_read_without_a_malformed_report(allow_local):
    body = rss2([{"title": "Caf&eacute;&nbsp;opens", "guid": "cafe", "html": text("cafe")}])
    report, source = poll(body, "application/rss+xml; charset=utf-8")
    assert (report.new, Article.objects.get().title) == (1, "Café opens")
    assert not IngestRejection.objects.filter(source=source).exists()


MALFORMED = rss2([{"title": "One", "guid": "one", "html": text("one")},
                  {"title": "Two", "guid": "two", "html": text("two")}]
                 ).replace(b"<item><title>Two", b"<item><<title>Two")


@pytest.mark.django_db
def test_a_malformed_feed_is_reported_with_what_was_read_and_lost(allow_local):
    _, source = poll(MALFORMED, "application/rss+xml")
    reason = IngestRejection.objects.get(source=source).reason
    assert reason.startswith("feed is malformed (<unknown>:1:")
    assert reason.endswith("read 2 of the 2 entries in it (none lost); entries from number 2 on may be incomplete")


@pytest.mark.django_db
def test_an_unchanged_malformed_feed_is_reported_once_not_on_every_poll(allow_local):
    _, source = poll(MALFORMED, "application/rss+xml", times=3)
    assert IngestRejection.objects.filter(source=source).count() == 1


@pytest.mark.django_db
def test_a_malformed_oversized_feed_is_reported_once_for_each_problem(allow_local, settings):
    settings.NEWSDIGEST_FEED_MAX_ENTRIES = 1
    _, source = poll(MALFORMED, "application/rss+xml", times=3)
    reasons = list(IngestRejection.objects.filter(source=source).values_list("reason", flat=True))
    assert len(reasons) == 2
    assert reasons[1] == "feed has 2 entries; read the first 1 and refused the other 1"


@pytest.mark.django_db
def test_a_malformed_feed_that_changes_is_reported_again(allow_local):
    worse = MALFORMED.replace(b"<item><title>One", b"<item><<title>One")
    with http_server({"/a": (200, {}, MALFORMED), "/b": (200, {}, worse)}) as (base, _):
        source = Source.objects.create(name="Feed", kind=Source.Kind.FEED, url=f"{base}/a")
        feeds.poll_source(source, force=True)
        feeds.poll_source(source, force=True)
        Source.objects.filter(pk=source.pk).update(url=f"{base}/b")
        source.refresh_from_db()
        feeds.poll_source(source, force=True)
    assert IngestRejection.objects.filter(source=source).count() == 2
