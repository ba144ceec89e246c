"""Issue 16, offline-8: asides between a speaker and what they said.

A rank or honour set off by commas after a name ("Peter Hollis, SC, said") is no second actor, and
"said that, as ..., they should ..." gives the clause after the aside. Invented court-report texts
in the style of the tune split.
"""

from tests.helpers.offline import actors_of, needs_model

pytestmark = needs_model


def test_it_never_reports_the_honour_after_a_name_as_an_actor():
    text = "Speaking for the defence, Peter Hollis, SC, said the parents had acted in good faith. The trial continues."
    assert list(actors_of(text)) == ["Peter Hollis"]


def test_it_gives_what_was_said_after_an_aside_following_said_that():
    text = ("Speaking for the defence, Peter Hollis said that, as the parents came from a village where "
            "doctors are rare, they should be found not guilty. The trial continues in Brisbane.")
    assert actors_of(text)["Peter Hollis"] == "said they should be found not guilty"


def test_it_takes_the_next_statement_when_no_clause_with_its_own_subject_follows_the_aside():
    text = ("Peter Hollis said that, in the end, nothing could be done about it. "
            "Peter Hollis later left the court without comment.")
    assert actors_of(text)["Peter Hollis"] == "later left the court without comment"
