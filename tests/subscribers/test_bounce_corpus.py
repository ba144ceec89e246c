"""The kept corpus of real bounces (tests/data/bounces/, see its README) against the issue's targets,
and flufl.bounce alone on the same messages as the baseline to beat."""

import pytest

from tests.helpers.bounce_corpus import flufl_alone, manifest, ours, score


@pytest.fixture(scope="module")
def result():
    return score(ours)


@pytest.fixture(scope="module")
def baseline():
    return score(flufl_alone)


def test_the_corpus_is_large_and_mixed():
    rows = manifest()
    assert len(rows) >= 100
    assert {r["class"] for r in rows} >= {"hard", "soft", "policy", "complaint", "none"}


def test_at_least_90_percent_of_real_bounces_are_recognised(result):
    assert result.rate("recognised") >= 0.90, result.misses


def test_at_least_88_percent_get_the_exact_address(result):
    assert result.rate("exact address") >= 0.88, result.misses


def test_no_auto_reply_or_ordinary_mail_is_taken_for_a_bounce(result):
    assert result.counts["false bounces"][0] == 0, result.misses


def test_classification_beats_treating_every_permanent_failure_as_hard(result, baseline):
    # flufl.bounce reports permanent vs temporary only: the old handler's "5.x.x is hard".
    assert result.rate("class") > baseline.rate("class") + 0.25
    assert result.rate("soft/policy as hard") < baseline.rate("soft/policy as hard") / 3


def test_recognition_and_address_are_at_least_flufl_bounce_s(result, baseline):
    assert result.rate("recognised") >= baseline.rate("recognised")
    assert result.rate("exact address") >= baseline.rate("exact address")
