"""Issue 16, offline-8: a name never ends inside the parenthesis that gives its acronym.

The small model reads "The World Health Organization (WHO" as one span; the name and its acronym
are two mentions of one body. Invented texts in the style of the dev set.
"""

import pytest

from worker.summarize import ner
from worker.summarize.evaluation import get_engine, worker_path
from worker.summarize.offline import extract_actors
from worker.text import split_sentences

pytestmark = pytest.mark.skipif(not ner.available(), reason="the spaCy model is not installed")

TEXT = ("The World Health Organization (WHO) has approved a new vaccine for children that costs less than "
        "half as much as existing shots. Health minister Grace Otieno said the first doses would reach "
        "clinics in March.")


def test_it_keeps_the_acronym_out_of_the_name_the_model_reads_into_the_parenthesis():
    names = [a.name for a in extract_actors(TEXT, split_sentences(TEXT))]
    assert "World Health Organization" in names
    assert not any("WHO" in name for name in names)


def test_it_shows_no_name_with_an_open_parenthesis_after_grounding():
    summary = worker_path(get_engine("offline"))("Vaccine approved", TEXT)
    assert all("(" not in a.name for a in summary.key_actors)
    assert "World Health Organization" in [a.name for a in summary.key_actors]
