"""Issue 16, offline-8: a people or a faith is no actor, even where the model reads it as a body.

The texts are invented, in the style of the tune split; the model's NORP reading elsewhere in the
article is what marks the words as a group.
"""

from tests.helpers.offline import actors_of, needs_model
from worker.summarize import ner
from worker.text import split_sentences

pytestmark = needs_model


def test_it_never_reports_a_faith_the_model_reads_as_a_people_elsewhere():
    text = ("Per the decree signed by the leader of Roman Catholic Christianity, priests must report abuse. "
            "Catholic Christianity has long handled such cases internally. "
            "Archbishop Peter Lamb said the decree would change how dioceses work.")
    found = actors_of(text)
    assert "Peter Lamb" in found
    assert not any("Christianity" in name for name in found)


def test_it_keeps_a_blogger_who_hands_over_to_a_quotation_whatever_the_model_calls_the_name():
    text = ("Bloggers are following the clashes in the north.\n\n"
            "Paco Bardales of Diario del Norte [es] compiles a list of links and will keep updating his blog:\n\n"
            "The police fired on the protesters at dawn, and the roads are still closed.")
    assert ner.span_entities(split_sentences(text), [(1, 0, 13)])[0][0].label == "NORP"
    assert "Paco Bardales" in actors_of(text)
