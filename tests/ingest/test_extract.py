"""Page extraction on real pages of the ScrapingHub article-extraction benchmark (MIT, sample in
bench/data/extraction): where trafilatura keeps only a notice or half the article, readability's
text is kept; where trafilatura is right, its text stays."""

import gzip
import json

import pytest
import trafilatura

from tests.helpers.paths import REPO
from worker.ingest import articles

CORPUS = REPO / "bench" / "data" / "extraction"
TRUTH = json.loads((CORPUS / "ground-truth.json").read_text())


def page(prefix: str) -> tuple[str, str]:
    (key,) = [k for k in TRUTH if k.startswith(prefix)]
    return gzip.decompress((CORPUS / "html" / f"{key}.html.gz").read_bytes()).decode(), TRUTH[key]["articleBody"]


def recall(truth: str, text: str) -> float:
    """Share of the true body's 4-word shingles found in `text`."""
    wanted = articles._shingles(truth)
    return len(wanted & articles._shingles(text)) / len(wanted)


@pytest.mark.parametrize("prefix", ["f8ff621a", "d48aeb9c", "2f42ef1d"],
                         ids=["reprint-notice-only", "half-the-article", "first-part-only"])
def test_a_page_trafilatura_loses_is_read_by_the_second_extractor(prefix):
    html, truth = page(prefix)
    assert recall(truth, trafilatura.extract(html, favor_precision=True) or "") < 0.7
    assert recall(truth, articles.extract_html(html)["text"]) > 0.95


def test_a_page_trafilatura_reads_well_keeps_its_text():
    html, truth = page("042bb7b5")
    text = articles.extract_html(html)["text"]
    assert text == (trafilatura.bare_extraction(html, with_metadata=True, favor_precision=True).text
                    .replace("\n", "\n\n"))
    assert recall(truth, text) > 0.95

