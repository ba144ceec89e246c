"""Malformed and hostile files and records: each one a precise outcome, never a crash, nothing lost silently."""

import json

import pytest

from worker.ingest import articles
from worker.models import Article, IngestRejection

PARA = ("Officials in the northern province said on Monday that the new dam would be finished by next spring, "
        "two years later than first planned, because of flooding and a shortage of steel.")
TEXT = "\n\n".join(f"{PARA} Part {i}." for i in range(4))
EML_NO_TEXT = (b"From: a@example.com\r\nSubject: Picture only\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n")

# (file name, bytes, error the file is refused with)
REFUSED_FILES = [
    ("empty.txt", b"", "file is empty"),
    ("blank.md", b"  \n\t\n  ", "file is empty"),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file, not text"),
    ("report.pdf", b"%PDF-1.7 ...", "unsupported file type .pdf"),
    ("broken.json", b'{"title": "x", "text": ', "invalid JSON"),
    ("nested.json", b"[" * 200_000 + b"]" * 200_000, "JSON is nested too deeply to be articles"),
    ("scalar.json", b'"just a string"', "each JSON article must be an object"),
    ("bad-date.json", json.dumps({"title": "T", "text": TEXT, "published_at": "yesterday-ish"}).encode(),
     "published_at is not a date"),
    ("bad-url.json", json.dumps({"title": "T", "text": TEXT, "url": "javascript:alert(1)"}).encode(),
     "url must be http or https"),
    ("no-text.json", json.dumps({"title": "Only a title"}).encode(), "article has no text"),
    ("numbers.json", json.dumps({"title": "T", "text": 42}).encode(), "text must be a string, not int"),
    ("scripts.html", b"<html><head><script>alert(1)</script></head><body><script>x()</script>"
     b"<iframe src='https://evil.example'></iframe><style>p{}</style></body></html>",
     "no article text found in the HTML"),
    ("picture.eml", EML_NO_TEXT, "email has no text or HTML part"),
    ("only-cruft.txt", b"Budget vote\n\nShare this article\n\nBack to top\n\nContent Protection by",
     "article has no text"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "data", "error"), REFUSED_FILES, ids=[case[0] for case in REFUSED_FILES])
def test_bad_file_is_refused_with_a_clear_error(tmp_path, name, data, error):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(articles.IngestError, match=error):
        articles.ingest_file(path)
    assert not Article.objects.exists()


@pytest.mark.django_db
def test_a_5_mb_article_is_refused_as_over_the_limit(tmp_path):
    path = tmp_path / "huge.txt"
    path.write_text("Huge\n\n" + ("word " * 200 + "\n\n") * 5200)
    assert path.stat().st_size > 5_000_000
    with pytest.raises(articles.IngestError, match=r"over the limit of 1000000"):
        articles.ingest_file(path)


@pytest.mark.django_db
def test_a_huge_single_line_is_kept_as_one_paragraph(tmp_path):
    path = tmp_path / "line.txt"
    path.write_text("Long line\n" + " ".join(f"token{i}" for i in range(60_000)))
    (result,) = articles.ingest_file(path)
    assert "\n" not in result.article.text and result.article.text.endswith("token59999")


@pytest.mark.django_db
def test_cp1252_bytes_without_a_declared_charset_are_decoded(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(("Caf\u00e9 opens\n\n" + TEXT + " Cr\u00e8me br\u00fbl\u00e9e \u20ac5.").encode("cp1252"))
    (result,) = articles.ingest_file(path)
    assert result.article.title == "Caf\u00e9 opens"
    assert result.article.text.endswith("Cr\u00e8me br\u00fbl\u00e9e \u20ac5.")


@pytest.mark.django_db
def test_a_wrongly_declared_charset_loses_to_the_bytes(tmp_path):
    page = (f"<html><head><meta charset='utf-8'><title>Na\u00efve</title></head><body><article><p>{PARA} "
            f"Na\u00efve r\u00e9sum\u00e9.</p><p>{PARA}</p></article></body></html>")
    path = tmp_path / "wrong.html"
    path.write_bytes(page.encode("cp1252"))
    (result,) = articles.ingest_file(path)
    assert "Na\u00efve r\u00e9sum\u00e9." in result.article.text


@pytest.mark.django_db
def test_undecodable_bytes_are_replaced_not_fatal(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"Mixed bytes\n\n" + TEXT.encode() + b" tail \x81\x8d\x8f\x90\x9d\xff end")
    (result,) = articles.ingest_file(path)
    assert result.article.text.endswith("end")
    assert "\ufffd" in result.article.text


@pytest.mark.django_db
def test_a_utf16_file_with_bom_is_read(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_bytes(("Wide title\n\n" + TEXT).encode("utf-16"))
    (result,) = articles.ingest_file(path)
    assert result.article.title == "Wide title"


@pytest.mark.django_db
def test_missing_title_comes_from_the_first_sentence():
    result = articles.ingest_record({"title": "", "text": TEXT})
    assert result.article.title == ("Officials in the northern province said on Monday that the new dam would be "
                                    "finished by next spring")


@pytest.mark.django_db
def test_a_bad_record_of_a_list_is_recorded_and_its_siblings_kept(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"title": "Good", "text": TEXT}, ["not", "an", "object"]]))
    results = articles.ingest_file(path)
    assert [r.article.title for r in results] == ["Good"]
    assert IngestRejection.objects.get().reason == "each JSON article must be an object"
