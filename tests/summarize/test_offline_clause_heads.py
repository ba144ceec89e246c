"""Issue 16, offline-9: a name heading its clause keeps its verb past what stands between them.

An attached body with an aside ("of the University of Essex, speaking to the BBC,"), a parenthesis
and a place ("(Oberster Gerichtshof) of Austria"), a relative pronoun ("which", "who").
Invented texts in the style of the tune split.
"""

from tests.helpers.offline import actors_of, needs_model

pytestmark = needs_model


def test_an_attached_body_and_an_aside_do_not_hide_the_verb():
    text = ("Oliver Brandt of the University of Leeds, speaking to the BBC, said the ruling would change "
            "how platforms work. The case returns to the court in May.")
    assert actors_of(text)["Oliver Brandt"].startswith("said")


def test_a_parenthesis_and_a_place_after_the_name_do_not_hide_the_verb():
    text = ("As a result, the Federal Court of Appeal (Bundesgericht) of Switzerland referred the case "
            "to the tribunal in March. Lawyers expect a ruling this year.")
    assert actors_of(text)["Federal Court of Appeal"] == "referred the case to the tribunal in March"


def test_a_relative_clause_gives_the_action_when_the_main_verb_is_out_of_reach():
    text = ("Manchester Police, which arrested a second man on Tuesday — a 24-year-old from Salford — has "
            "not named him. The inquiry continues.")
    assert actors_of(text)["Manchester Police"] == "arrested a second man on Tuesday"
