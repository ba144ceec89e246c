"""Issue 16, offline-9: a person the NER model reads as a place is kept when the name acts.

The small model calls some names it does not know places ("Daysi Zapata" as GPE). A place neither
speaks nor calls press conferences: two or three proper words, none a place or organisation word,
never after "in", "at" or "from", and the subject of a verb of their own are a person.
Invented text in the style of the tune split.
"""

from tests.helpers.offline import actors_of, needs_model

pytestmark = needs_model


def test_a_name_read_as_a_place_that_acts_is_a_person():
    text = ("One of the indigenous leaders of the river communities, Daysi Zapata, called a press conference "
            "and said the army had fired first. The government denied it.")
    assert actors_of(text)["Daysi Zapata"].startswith("called a press conference")
