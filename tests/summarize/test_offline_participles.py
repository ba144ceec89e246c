"""Issue 16, offline-10: a name followed by a participle taking its object ("Anna Lind speaking to the
council called ...") or by a parenthesis ("Maria Souza (@mariasouza) comments") is doing something, not
modifying a noun. Invented texts in the style of the tune split.
"""

from tests.helpers.offline import needs_model
from worker.summarize.offline import _spans

pytestmark = needs_model


def test_a_name_before_a_participle_with_its_preposition_is_no_modifier():
    sentence = "On Tuesday, Danish premier Anna Lind speaking to the Nordic Council called the deal void."
    mention = next(m for m in _spans(sentence, 0, set()) if m.tokens[-2:] == ["Anna", "Lind"])
    assert not mention.modifier


def test_a_name_before_a_parenthesised_handle_is_no_modifier():
    sentence = "Maria Souza (@mariasouza) comments on this in her blog and stresses how useful the web is."
    mention = next(m for m in _spans(sentence, 0, set()) if m.tokens == ["Maria", "Souza"])
    assert not mention.modifier
