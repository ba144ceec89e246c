"""Issue 16, offline-10: a body named again by the ending of its full name is one actor, not two.
Invented texts in the style of the tune split.
"""

from tests.helpers.offline import actors_of, needs_model
from worker.summarize.offline import ActorKind, Candidate, _merge_target

pytestmark = needs_model


def _body(name: str) -> Candidate:
    return Candidate(tokens=name.split(), kind=ActorKind.ORGANISATION)


def test_the_ending_of_a_body_s_full_name_is_that_body():
    full = _body("Nordic Court of Appeal")
    assert _merge_target(_body("Court of Appeal"), [full]) is full


def test_a_body_named_in_full_and_then_by_its_ending_is_listed_once():
    text = ("The Nordic Court of Appeal ruled on Monday that the ferry operator must pay damages. "
            "The Court of Appeal also ordered the operator to publish its safety records. "
            "The operator said it would study the ruling.")
    names = set(actors_of(text))
    assert "Nordic Court of Appeal" in names and "Court of Appeal" not in names
