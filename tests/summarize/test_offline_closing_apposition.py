"""Issue 16, offline-10: a name in apposition to a description before it ("the paper's editor, Ruth
Amsel, said ...") is the subject of the verb right after its closing comma.
Invented texts in the style of the tune split.
"""

from tests.helpers.offline import actors_of, needs_model

pytestmark = needs_model


def test_the_verb_after_an_apposition_s_closing_comma_is_the_name_s():
    text = ("A court in Bergen jailed a former nurse for life on Tuesday for the murder of four patients. "
            "One of the victims' daughters, Ruth Amsel, said she hoped the verdict would bring the families, "
            "who sat through six weeks of evidence, some peace. The nurse had denied the charges.")
    assert actors_of(text)["Ruth Amsel"].startswith("said she hoped the verdict")
