"""Issue 16, offline-7: sources in blog round-ups, and subjects the surface rules used to miss.

All texts are invented, in the style of the tune split (Global Voices round-ups, Wikinews reports).
"""

import pytest

from tests.helpers.offline import actors_of, needs_model
from worker.summarize import ner
from worker.summarize.offline import (
    Candidate,
    Mention,
    _align,
    _foreign,
    _merge,
    _only_a_source,
    summarize,
)
from worker.summarize.schemas import ActorKind
from worker.text import split_sentences

pytestmark = needs_model


def test_it_gives_a_source_that_hands_over_to_a_quotation_the_quoted_words():
    text = ("Teachers across the region are reacting to the new school reform.\n\n"
            "In his blog, Tomasz Wielki writes:\n\n"
            "The reform is a step back for every rural school in the region. Nobody asked us.")
    assert actors_of(text)["Tomasz Wielki"].startswith("writes “The reform is a step back")


def test_it_quotes_the_translation_when_the_post_is_quoted_in_its_own_language_first():
    text = ("Bloggers are following the floods in the south.\n\n"
            "Marisol Quispe Huamán writes:\n\n"
            "Esto va a terminar mal, y el gobierno no hace nada por la gente de la zona.\n\n"
            "This will end badly, and the government does nothing for the people of the area.")
    assert actors_of(text)["Marisol Quispe Huamán"].startswith("writes “This will end badly")


def test_it_keeps_a_handle_that_hands_over_to_a_quotation():
    text = ("Users are testing the filter software that schools must install.\n\n"
            "Zorvik found out that every forum about games is blocked:\n\n"
            "Once it is installed, the software blocks all the game forums I use.")
    assert actors_of(text)["Zorvik"].startswith("found out that every forum")


def test_it_reads_the_verb_after_a_language_tag():
    text = ("Lucía Ferreyra of Diario del Sur [es] writes about the flooding in the valley and the slow "
            "response of the authorities.")
    assert actors_of(text)["Lucía Ferreyra"].startswith("writes about the flooding")


def test_it_tells_a_quotation_in_another_language_from_english():
    assert _foreign("Entre Brack, que ya se vendió, y Pizango, no veo ninguna posibilidad de entendimiento.")
    assert _foreign("这是一个测试句子，内容是关于软件的。")
    assert not _foreign("Between Brack, who has already sold out, and Pizango, I see no chance of an agreement.")


def test_it_reads_a_present_tense_reporting_verb():
    text = "Erik Sandvold criticizes the council for closing the library without a public hearing."
    assert actors_of(text)["Erik Sandvold"].startswith("criticizes the council")


def test_it_takes_the_name_after_a_title_of_a_place():
    text = "First Minister of Valmora Ilse Brandt said the referendum would go ahead in the spring."
    assert actors_of(text)["Ilse Brandt"].startswith("said the referendum")


def test_it_gives_a_speaker_named_after_the_quote_and_a_title_what_they_said():
    text = ('The old bridge collapsed on Sunday night. "We will rebuild the bridge by the spring" '
            "tweeted Mayor of Kestrel Joan Ashdown.")
    assert actors_of(text)["Joan Ashdown"].startswith("tweeted “We will rebuild the bridge")


def test_it_reads_a_subject_past_a_dash_aside():
    text = "The Valmora Guard — whose commander is General Piet Olsen — entered the town on Monday."
    assert actors_of(text)["Valmora Guard"].startswith("entered the town")


def test_it_reads_a_subject_past_a_day():
    text = ("Some residents have been critical; mayor Joan Ashdown on Tuesday suggested a wider inquiry into "
            "the collapse.")
    assert "suggested a wider inquiry" in actors_of(text)["Joan Ashdown"]


def test_it_reads_both_ends_of_a_long_coordinated_subject():
    text = ("On Friday, Prime Minister Anders Holm and Finance Minister Karin Vestergaard Lund spoke on the "
            "phone about the budget.")
    actors = actors_of(text)
    assert actors["Anders Holm"].startswith("spoke on the phone")
    assert actors["Karin Vestergaard Lund"].startswith("spoke on the phone")


def test_it_reads_a_subject_closing_an_apposition():
    text = ("Members of the public confronted him; another, a chef named Tomek Nowak, chased him down the "
            "bridge with a fire extinguisher.")
    assert actors_of(text)["Tomek Nowak"].startswith("chased him down the bridge")


def test_it_keeps_a_subject_whose_verb_follows_an_adverb():
    text = ("The team had twice been denied visas. President Ana Ruiz personally asked the council to help the "
            "girls enter the country.")
    assert actors_of(text)["Ana Ruiz"].startswith("personally asked the council")


def _candidate(tokens: list[str], kind: ActorKind) -> Candidate:
    mention = Mention(tokens=tokens, sentence=0, start=0, end=1, titles=[], locative=False, subject=False,
                      modifier=False, group_noun=False, sentence_initial=False)
    return Candidate(tokens=tokens, mentions=[mention], kind=kind)


def test_it_merges_a_bare_surname_read_as_an_organisation_into_the_person():
    merged = _merge([_candidate(["Bob", "McDonnell"], ActorKind.PERSON),
                     _candidate(["McDonnell"], ActorKind.ORGANISATION)])
    assert [(c.name, len(c.mentions)) for c in merged] == [("Bob McDonnell", 2)]


def test_it_merges_a_two_word_surname_into_the_person():
    merged = _merge([_candidate(["Mahmood", "Al", "Yousif"], ActorKind.PERSON),
                     _candidate(["Al", "Yousif"], ActorKind.PERSON)])
    assert [(c.name, len(c.mentions)) for c in merged] == [("Mahmood Al Yousif", 2)]


def test_it_keeps_an_organisation_that_is_no_one_s_surname():
    merged = _merge([_candidate(["Bob", "McDonnell"], ActorKind.PERSON),
                     _candidate(["Boeing"], ActorKind.ORGANISATION)])
    assert sorted(c.name for c in merged) == ["Bob McDonnell", "Boeing"]


def test_it_starts_a_sentence_at_a_latin_extended_capital():
    assert split_sentences("The tusk came from the wall in the hall. Łukasz, a chef, took it down.") == [
        "The tusk came from the wall in the hall.", "Łukasz, a chef, took it down."]


INTERVIEW = """
Wikinews: How did the festival start?

Hanna Berg: Karl Olsen founded it in 1998 with three friends. Maria Lind joined the board a year later.

Wikinews: Who decides the programme?

Hanna Berg: Peter Holm chooses the films each spring. Sven Dahl signed the first sponsorship deal.
Eva Strand wrote the festival's first catalogue.

Wikinews: What comes next?

Hanna Berg: We will open a second venue next year.
"""

def test_it_keeps_an_interview_to_the_interviewee_and_at_most_two_others():
    names = [a.name for a in summarize("Interview with Hanna Berg", INTERVIEW).key_actors]
    assert "Hanna Berg" in names
    assert len(names) <= 3


def test_it_ranks_a_speaker_named_after_the_quotation_like_one_named_before_it():
    text = ("Jonas Kerr stabbed two people at the market hall on Friday. Kerr then fled across the bridge. "
            "Kerr had been released from prison last year. Kerr appeared in court on Monday. "
            "Kerr was remanded in custody. Kerr faces a life sentence. "
            "Aldo Brenner chased him with a fire extinguisher. Brenner said he did not think twice. "
            "Brenner works at the hall as a chef. "
            "Tilda Voss held him down. Voss said it was over in seconds. Voss is a tour guide. "
            "Oskar Lind took his knife. Lind said others helped. Lind is a student. "
            '"I am grateful to everyone who ran towards danger" said Mayor of Kestrel Joan Ashdown.')
    assert "Joan Ashdown" in actors_of(text)


def test_it_leaves_off_words_the_model_reads_as_another_kind_of_name():
    sentence = "In Spain, writing at North Madrid Tomas Ferrandiz notes how the vote changed the city:"
    start = sentence.index("Madrid")
    end = sentence.index(" notes")
    mention = Mention(tokens=["Madrid", "Tomas", "Ferrandiz"], sentence=0, start=start, end=end, titles=[],
                      locative=False, subject=True, modifier=False, group_noun=False, sentence_initial=False,
                      verb="notes")
    entities = [ner.Entity(sentence.index("North"), sentence.index(" Tomas"), "FAC"),
                ner.Entity(sentence.index("Tomas"), end, "PERSON")]
    aligned = _align(mention, sentence, entities, set())
    assert aligned is not None and aligned.tokens == ["Tomas", "Ferrandiz"]


def _acting(tokens: list[str], kind: ActorKind, verbs: list[str]) -> Candidate:
    mentions = [Mention(tokens=tokens, sentence=k, start=0, end=1, titles=[], locative=False, subject=True,
                        modifier=False, group_noun=False, sentence_initial=True, verb=verb)
                for k, verb in enumerate(verbs)]
    return Candidate(tokens=tokens, mentions=mentions, kind=kind)


@pytest.mark.parametrize(("tokens", "verbs", "source"), [
    (["El", "Comercio"], ["reported"], True),  # a paper cited for the news tells the story
    (["Thames", "Valley", "Police"], ["reported"], False),  # a police force reporting an arrest acts
    (["El", "Comercio"], ["reported", "sued"], False),  # a paper that also does something acts
    (["Kestrel", "Airways"], ["said"], False),
])
def test_it_tells_a_body_only_cited_for_the_news_from_one_that_acts(tokens, verbs, source):
    assert _only_a_source(_acting(tokens, ActorKind.ORGANISATION, verbs)) is source


def test_it_reads_a_blog_name_with_lowercase_words_that_hands_over_to_a_quotation():
    text = ("Bloggers in the region are reacting to the speech.\n\n"
            "After watching the speech, Notes from the Oasis, a teacher living in Doha, writes:\n\n"
            "Forty minutes of my evening went on promises we have heard before.")
    assert actors_of(text)["Notes from the Oasis"].startswith("writes “Forty minutes of my evening")


def test_it_does_not_take_an_opening_phrase_for_a_source():
    text = ("Bloggers in the region are reacting to the speech.\n\n"
            "The readers, it seems, agreed:\n\n"
            "Forty minutes of my evening went on promises we have heard before.")
    assert not any("readers" in name for name in actors_of(text))


def test_it_merges_a_first_surname_into_a_full_spanish_name_even_one_read_as_an_organisation():
    merged = _merge([_candidate(["Ricardo", "Rosselló", "Nevares"], ActorKind.ORGANISATION),
                     _candidate(["Rosselló"], ActorKind.ORGANISATION)])
    assert [(c.name, len(c.mentions)) for c in merged] == [("Ricardo Rosselló Nevares", 2)]


def test_it_keeps_the_first_name_after_a_title_of_a_ministry():
    text = ("Secretary of Justice Wanda Vázquez Garced has said she is not interested in taking up the office "
            "of governor.")
    assert "Wanda Vázquez Garced" in actors_of(text)


def test_it_does_not_take_a_participle_with_its_agent_for_the_name_s_verb():
    text = "Interstellar Grain Samples collected by the Aurora probe in the stratosphere showed traces of iron."
    assert not any(action.startswith("collected by") for action in actors_of(text).values())
