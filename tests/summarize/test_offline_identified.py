"""Issue 16, offline-10: a name given after a copula by what it did ("One of the men who held the
attacker down was ...") takes that description as its action. Invented texts in the style of the tune split.
"""

from tests.helpers.offline import actors_of, needs_model
from worker.summarize.offline import _identified_phrase, _spans

pytestmark = needs_model


def test_a_name_after_a_description_of_what_someone_did_takes_that_as_its_action():
    text = ("A man armed with two knives attacked commuters at Leeds station on Friday. Officers arrived within "
            "minutes. One of the men who pinned the attacker to the floor was Daniel Hirst, 37, a local "
            "plumber. The station reopened on Saturday.")
    assert actors_of(text)["Daniel Hirst"] == "pinned the attacker to the floor"


def test_a_plural_description_is_said_of_the_one_name_in_the_singular():
    sentence = "Among the people who were rescued from the roof was Maria Lopez, a nurse."
    mention = next(m for m in _spans(sentence, 0, set()) if m.tokens == ["Maria", "Lopez"])
    assert _identified_phrase(mention, sentence) == "was rescued from the roof"


def test_a_description_after_a_verb_is_not_read_as_the_name_s_action():
    sentence = "Reporters said that those who spoke at the meeting were Anna Berg and two others."
    mention = next(m for m in _spans(sentence, 0, set()) if m.tokens == ["Anna", "Berg"])
    assert _identified_phrase(mention, sentence) == ""
