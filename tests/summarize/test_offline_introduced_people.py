"""Issue 16, offline-10: a name the article itself introduces as a person ("Adel, a 23-year-old blogger,",
"Sandmonkey who attended the event") is a person in all its mentions, whatever the small model reads there.
Invented texts in the style of the tune split.
"""

from tests.helpers.offline import actors_of, needs_model
from worker.summarize.offline import _introduced_person, _spans

pytestmark = needs_model


def _first(sentence: str):
    return _spans(sentence, 0, set())[0]


def test_an_apposition_headed_by_a_person_noun_introduces_a_person():
    sentence = "Karim, a 23-year-old blogger, took a break from his exams to follow the speech."
    assert _introduced_person(_first(sentence), sentence)


def test_who_after_a_name_introduces_a_person():
    sentence = "Desertfox who attended the rally, wrote about the crowd."
    assert _introduced_person(_first(sentence), sentence)


def test_an_apposition_headed_by_a_thing_introduces_no_person():
    sentence = "Orion, a 40-metre ferry, sank off the coast on Monday."
    assert not _introduced_person(_first(sentence), sentence)


def test_a_lone_name_opening_its_only_sentence_is_kept_when_introduced_as_a_person():
    text = ("Bloggers across the region followed the speech on Thursday. "
            "Karim, a 23-year-old blogger, took a break from his exams to follow the speech. "
            "The speech lasted almost an hour.")
    assert actors_of(text)["Karim"].startswith("took a break from his exams")
