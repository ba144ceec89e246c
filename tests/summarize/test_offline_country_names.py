"""Issue 16, offline-9: countries under the common English names pycountry does not list are countries.

pycountry calls Turkey "Türkiye", so the gazetteer did not know "Turkey", and a state the model reads
as a place is an actor only when the gazetteer knows it: Turkey acting in a story was dropped.
Invented text in the style of the tune split.
"""

from tests.helpers.offline import needs_model
from worker.summarize.offline import summarize
from worker.summarize.schemas import ActorKind

pytestmark = needs_model


def test_turkey_acting_in_the_story_is_a_country_actor():
    text = ("Turkey launched a military offensive into northern Syria on Wednesday. The Kurdish-led forces "
            "said they would defend the border towns. Turkey said the operation would last weeks.")
    actors = {a.name: a for a in summarize("", text).key_actors}
    assert actors["Turkey"].kind == ActorKind.COUNTRY
