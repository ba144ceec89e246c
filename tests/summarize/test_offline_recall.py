"""Issue 16 recall: names the small NER model misses, and speakers named with an attached phrase."""

import pytest

from worker.summarize import ner
from worker.summarize.offline import _proper_name, extract_actors
from worker.text import split_sentences

pytestmark = pytest.mark.skipif(not ner.available(), reason="the spaCy model is not installed")

ATTACHED_SPEECH = """
The council voted on Monday to close the old harbour bridge for repairs.
Cardinal Tomas Verhoeven of the Valmora Archdiocese said, "We have asked for this for years, and we welcome it."
The works will take eight months and cost 12 million euros, the council said.
"""


def test_a_speaker_with_an_attached_phrase_gets_what_they_said_as_the_action():
    actors = {a.name: a for a in extract_actors(ATTACHED_SPEECH)}
    assert "Tomas Verhoeven" in actors
    action = actors["Tomas Verhoeven"].action
    assert action.startswith("said “We have asked for this")
    assert actors["Tomas Verhoeven"].evidence in ATTACHED_SPEECH  # a verb phrase from the evidence sentence


def test_the_attached_phrase_without_a_quote_is_still_the_clause():
    text = "Agnes Molnar of the Civic Alliance said the vote was rushed through at night."
    sentences = split_sentences(text)
    (actor,) = [a for a in extract_actors(text, sentences) if a.name == "Agnes Molnar"]
    assert actor.action.startswith("said the vote was rushed")


class _Mention:
    def __init__(self, tokens: list[str], locative: bool = False):
        self.tokens, self.locative = tokens, locative


@pytest.mark.parametrize(("tokens", "kept"), [
    (["Aner", "Shalev"], True),  # two proper words: the rules' reading stands when the model sees nothing
    (["Heaven", "Sent", "Gaming"], True),
    (["Yesterday", "Shalev"], False),  # a calendar/common word is no part of a name
    (["Shalev"], False),  # one word alone needs the model's word
    (["President", "Shalev"], False),  # a title is not a name word
    (["Valmora", "Valley"], False),  # a place cue
])
def test_which_names_the_model_missed_stay(tokens: list[str], kept: bool):
    assert _proper_name(_Mention(tokens), {"yesterday"}) is kept  # type: ignore[arg-type]


def test_a_name_in_a_place_phrase_is_not_kept_without_the_model():
    assert not _proper_name(_Mention(["Aner", "Shalev"], locative=True), set())  # type: ignore[arg-type]


def test_no_action_no_actor_still_holds():
    # Named only as an object, with nothing said or done: still left out (issue 16: no filler actions).
    text = ("The museum reopened on Sunday after a two-year renovation. Visitors queued for an hour to see "
            "the new wing, which was paid for in part by donations from Harriet Vance Okafor.")
    sentences = split_sentences(text)
    assert all(a.action.split() and not a.action.startswith("is named") for a in extract_actors(text, sentences))


def test_a_body_acting_through_its_spokeswoman_is_an_actor_with_what_was_said():
    text = ("Harbourline Shipping will close its Valmora depot in March, putting 300 jobs at risk. "
            "Harbourline Shipping's spokeswoman said the depot had lost money for five years. "
            "Unions at the depot called the decision a betrayal.")
    actors = {a.name: a for a in extract_actors(text)}
    assert actors["Harbourline Shipping"].action == "said the depot had lost money for five years"
    assert actors["Harbourline Shipping"].evidence.startswith("Harbourline Shipping's spokeswoman said")


def test_a_possessive_without_a_spokesperson_is_not_speech():
    text = ("Harbourline Shipping will close its Valmora depot in March. "
            "Harbourline Shipping's depot said goodbye to its last ship on Friday.")
    actors = {a.name: a for a in extract_actors(text)}
    assert "goodbye" not in getattr(actors.get("Harbourline Shipping"), "action", "")


ROUND_UP = """
Bloggers in Valmora reacted quickly to the new internet law passed on Tuesday.
Tessa Marlowe was not impressed by the vote and writes:
The law gives the police the right to read every message without a warrant, and nobody asked us.
Others were more patient with the government.
"""


def test_a_sentence_handing_over_to_a_quotation_names_its_speaker():
    actors = {a.name: a for a in extract_actors(ROUND_UP)}
    assert "Tessa Marlowe" in actors
    assert actors["Tessa Marlowe"].evidence == "Tessa Marlowe was not impressed by the vote and writes:"
    assert actors["Tessa Marlowe"].action == "was not impressed by the vote and writes"


def test_a_caption_ending_in_a_colon_still_names_no_one():
    text = ("The council voted on Monday to close the old harbour bridge for repairs, officials said.\n\n"
            "Photo: Harbour bridge by Tessa Marlowe:\n\nThe works will take eight months, the council said.")
    assert "Tessa Marlowe" not in {a.name for a in extract_actors(text)}
