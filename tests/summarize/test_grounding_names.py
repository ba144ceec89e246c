"""Name variants are found only where the article writes a name (real-news false positives)."""

import pytest

from worker.summarize import grounding

ARTICLE = grounding.Article(
    "The referee picked up the ball. The judge set bail at $500. German police and Northrop Grumman "
    "engineers helped. Files sat on the nas. Ahmad Masoud spoke. Muhammad Ali boxed.")


@pytest.mark.parametrize("name", ["Bill", "Germany", "NASA"])
def test_a_name_is_not_found_in_a_common_word_or_a_name_ending_otherwise(name):
    assert ARTICLE.find_name(name) is None


@pytest.mark.parametrize(("name", "spelled"), [("Ahmad Massoud", "Ahmad Masoud"), ("Mohammed Ali", "Muhammad Ali"),
                                              ("German", "German"), ("Grumman", "Grumman")])
def test_spelling_variants_and_exact_names_are_still_found(name, spelled):
    assert ARTICLE.find_name(name) == spelled
