"""Issue 16, offline-9: an interviewee known only by a first name ("Bill: ...") is a key actor.

A lone capitalised word that only ever opens a sentence is usually no name; a speaker label is one by
the page's layout. Invented interview in the style of the tune split.
"""

from tests.helpers.offline import needs_model
from worker.summarize.offline import summarize

pytestmark = needs_model

INTERVIEW = """Wikinews spoke with the owners of a small bakery in Leeds about the rising cost of flour.

Wikinews: How did the business start?

Marta: We opened the shop ten years ago with a loan from my brother.

Wikinews: What has changed since then?

Marta: Flour costs twice what it did, and the energy bills are worse.

Wikinews: Will you raise your prices?

Marta: We have no choice, but we will keep the cheapest loaf as it is.
"""


def test_an_interviewee_named_by_a_first_name_label_is_an_actor():
    actors = {a.name: a.action for a in summarize("", INTERVIEW).key_actors}
    assert actors["Marta"].startswith("said “We opened the shop")
