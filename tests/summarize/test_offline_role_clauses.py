"""Issue 16, offline-10: a description read past the end of its apposition ("the Lord President of the
court decided") is no role, so it never becomes an "is ..." action. Invented texts in the style of the tune split.
"""

from tests.helpers.offline import needs_model
from worker.summarize.offline import _clause_in

pytestmark = needs_model


def test_a_description_ending_on_a_verb_runs_into_a_clause():
    assert _clause_in("the Lord President of the court decided")


def test_a_description_with_a_verb_taking_an_object_runs_into_a_clause():
    assert _clause_in("the columnist compared his visit to an earlier one")


def test_a_participle_before_a_noun_or_a_preposition_is_still_a_description():
    assert not _clause_in("the recently elected mayor of the city")
    assert not _clause_in("a businessman accused of fraud in 2019")
