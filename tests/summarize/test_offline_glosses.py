"""Issue 16, offline-8: a name glossing a noun in parentheses is not the subject of the noun's verb.

Invented text in the style of the tune split's court reports.
"""

from tests.helpers.offline import actors_of, needs_model

pytestmark = needs_model


def test_it_never_gives_a_name_in_a_parenthetical_gloss_the_verb_after_it():
    text = ("Legal scholar Maria Holm said the ruling means a single EU country (in this case Portugal) "
            "could demand that a platform remove a post worldwide. The court sits again in June.")
    assert actors_of(text).get("Portugal", "") != "could demand that a platform remove a post worldwide"


def test_it_still_gives_an_acronym_in_its_own_parentheses_the_verb_after_it():
    text = ("The Mountain Defence Front (MDF) said its fighters had left the valley. "
            "Villagers returned on Sunday.")
    assert actors_of(text)["Mountain Defence Front"] == "said its fighters had left the valley"
