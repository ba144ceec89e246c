"""Issue 16, offline-10: the police, named by the common noun alone, are an actor when they act.
Invented texts in the style of the tune split.
"""

from tests.helpers.offline import actors_of, needs_model
from worker.summarize.offline import _generic_bodies

pytestmark = needs_model

STORY = ("A man armed with a knife attacked shoppers in a Leeds market on Friday, injuring three people. "
         "Police arrived within minutes and arrested him. Witness Helen Marsh said the stalls emptied in seconds. "
         "According to the council, the police then closed the market for the day. "
         "Police said the three injured people were in a stable condition.")


def test_the_police_acting_in_a_story_are_a_key_actor():
    assert actors_of(STORY)["Police"] == "arrived within minutes and arrested him"


def test_the_police_named_as_a_modifier_or_an_agent_are_not_a_subject():
    sentence = "The police officers were thanked by police chiefs, and police were called to the scene."
    assert _generic_bodies(sentence, 0) == []


def test_a_named_police_force_takes_the_bare_noun_s_mentions():
    text = ("Yesterday, Greater Manchester Police said they had arrested a man after a stabbing in Salford. "
            "Police arrested the 31-year-old at his home. Police said three people were treated in hospital.")
    names = set(actors_of(text))
    assert "Greater Manchester Police" in names and "Police" not in names
