"""Issue 16, offline-8: every name of a subject made of several names gets that subject's verb.

Invented texts in the style of the tune split (court reports, summit reports, election results).
"""

from tests.helpers.offline import actors_of, needs_model

pytestmark = needs_model


def test_it_gives_the_first_of_two_subjects_with_ages_and_a_spouse_the_verb_in_the_singular():
    text = ("Anna Berg, 42, and her husband Tom Lund, 45, from Malmo, are facing trial for fraud. "
            "The court meets in May.")
    found = actors_of(text)
    assert found["Anna Berg"] == "is facing trial for fraud"
    assert found["Tom Lund"] == "is facing trial for fraud"


def test_it_gives_names_in_an_apposition_to_a_coordinated_subject_the_verb():
    text = ("Finance minister Anna Berg and her Danish and Finnish counterparts, Tom Lund and Eero Salo, "
            "met in Oslo on Monday to discuss the budget. Talks resume in May.")
    found = actors_of(text)
    assert found["Anna Berg"] == found["Tom Lund"] == "met in Oslo on Monday to discuss the budget"


def test_it_never_gives_a_name_placed_by_a_preposition_the_verb():
    text = ("Anna Berg, 42, and her husband Tom Lund, 45, from Malmo, are facing trial for fraud. "
            "The court meets in May.")
    assert "Malmo" not in actors_of(text)


def test_it_never_reads_a_description_joined_by_and_as_several_subjects():
    text = ("Ingrid Lund, a silver and bronze Paralympic medalist in wheelchair tennis, retired from the game "
            "after the Games in Tokyo. She now coaches in Bergen.")
    assert "Paralympic" not in actors_of(text)


def test_it_never_gives_the_verb_to_names_after_a_verb_earlier_in_the_sentence():
    text = ("The latest poll placed him at 13 percent, 14 points behind Green Party nominee Tom Lund, "
            "and 19 points behind Liberal Party nominee Anna Berg, with many undecided. "
            "Voting starts in May.")
    found = actors_of(text)
    assert not any(action.startswith(("points", "is", "was")) for action in found.values())


def test_it_puts_the_verb_of_a_pair_of_names_in_the_singular_for_each():
    text = "Anna Berg and Tom Lund were re-elected in the northern district. Turnout was low."
    found = actors_of(text)
    assert found["Anna Berg"] == found["Tom Lund"] == "was re-elected in the northern district"
