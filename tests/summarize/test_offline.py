"""The offline engine on small invented articles, and on the held-out Panjshir sample when present."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers.paths import SHARED_SAMPLES
from worker.summarize import ner
from worker.summarize.offline import ENGINE_VERSION, extract_actors, strip_furniture, summarize
from worker.summarize.schemas import ActorKind
from worker.summarize.shorten import ends_badly, shorten
from worker.text import fold, split_sentences

FATHER_AND_SON = """
Rustam Karimov, the son of the late commander Rustam Aziz Karimov, said on Monday that his movement would
fight on. Karimov told supporters in the Zeravshan Valley that the Mountain Defence Front had enough food
for the winter. His father, Rustam Aziz Karimov, led the resistance in the 1990s and was killed in 2001.
Rustam Karimov said the government in Dushanbe had ignored the valley for years. The Mountain Defence
Front (MDF) said its fighters had repelled an attack near the river. Karimov also called on Uzbekistan to
open its border to refugees. Uzbekistan rejected the request on Tuesday.
"""

VARIANTS = """
Security forces detained Mohammed Al-Rashid at the airport on Friday, officials said. Muhammad Al-Rashid,
a former finance official, is accused of taking bribes from a building firm. Al-Rashid denied the
charges through his lawyer, Hana Saleem. Mohamed Al-Rashid will appear before a judge in the capital next
week. The Anti-Corruption Commission said it had frozen his accounts.
"""


def names(text: str) -> list[str]:
    return [actor.name for actor in summarize("", text).key_actors]


def test_engine_version_is_bumped_so_cached_summaries_are_redone():
    assert ENGINE_VERSION != "offline-1"


def test_it_keeps_father_and_son_apart():
    found = names(FATHER_AND_SON)
    assert "Rustam Karimov" in found
    assert "Rustam Aziz Karimov" in found


def test_it_merges_transliteration_variants_into_one_actor():
    found = [fold(n) for n in names(VARIANTS)]
    rashids = [n for n in found if "rashid" in n]
    assert len(rashids) == 1


def test_it_merges_an_acronym_into_its_expansion():
    found = names(FATHER_AND_SON)
    assert "Mountain Defence Front" in found
    assert "MDF" not in found


def test_it_excludes_places():
    found = names(FATHER_AND_SON)
    assert not {"Zeravshan Valley", "Zeravshan", "Dushanbe"} & set(found)


def test_a_country_that_acts_is_an_actor_of_kind_country():
    # Not FATHER_AND_SON, where Uzbekistan only acts in the last sentence: since offline-9 the selection
    # fitted on real news leaves out a country named late and once as the subject.
    text = ("Uzbekistan closed its border with Tajikistan on Monday. Uzbekistan said the crossing would reopen "
            "once refugees were registered. Tajikistan protested.")
    actors = {a.name: a for a in summarize("", text).key_actors}
    assert actors["Uzbekistan"].kind == ActorKind.COUNTRY


def test_evidence_is_a_verbatim_sentence_of_the_article():
    normalised = " ".join(FATHER_AND_SON.split())
    for actor in summarize("", FATHER_AND_SON).key_actors:
        assert actor.evidence in normalised
        assert actor.evidence in split_sentences(FATHER_AND_SON)


def test_role_comes_from_the_appositive():
    actors = {a.name: a for a in summarize("", FATHER_AND_SON).key_actors}
    assert actors["Rustam Karimov"].role.startswith("the son of")


def test_summary_has_two_to_four_sentences_within_eighty_words():
    text = " ".join(f"Sentence number {i} reports that the council approved budget item {i} today." for i in range(30))
    summary = summarize("Council approves budget", text).summary
    assert 2 <= len(split_sentences(summary)) <= 4
    assert len(summary.split()) <= 80


def test_summary_keeps_article_order():
    sentences = split_sentences(FATHER_AND_SON)
    chosen = split_sentences(summarize("", FATHER_AND_SON).summary)
    assert [sentences.index(s) for s in chosen] == sorted(sentences.index(s) for s in chosen)


def test_a_long_headline_is_cut_at_a_phrase_boundary_with_an_ellipsis():
    title = "An unusually long headline about a regional parliament that voted on a budget, a tax and a bridge"
    headline = summarize(title, FATHER_AND_SON).headline
    assert len(headline) <= 90
    assert headline == "An unusually long headline about a regional parliament that voted on a budget, a tax…"


def test_why_it_matters_is_empty_or_not_a_summary_sentence():
    result = summarize("", FATHER_AND_SON)
    assert not result.why_it_matters or result.why_it_matters not in result.summary


def test_empty_text_does_not_crash():
    result = summarize("Nothing here", "")
    assert result.headline == "Nothing here"
    assert result.key_actors == []


def test_one_sentence_text_does_not_crash():
    result = summarize("", "Mayor Anna Berg opened the new bridge on Sunday.")
    assert result.summary == "Mayor Anna Berg opened the new bridge on Sunday."


def test_footer_boilerplate_is_never_evidence_or_summary():
    text = FATHER_AND_SON + "\n\nShare this article\n\nBack to top button\n"
    result = summarize("", text)
    assert "Back to top" not in result.summary
    assert all("Back to top" not in a.evidence for a in result.key_actors)


def test_split_sentences_keeps_abbreviations_and_initials_inside_sentences():
    text = "Mr. Smith met Dr. Jones in the U.S. capital on Monday. John F. Kennedy was not there."
    assert split_sentences(text) == ["Mr. Smith met Dr. Jones in the U.S. capital on Monday.",
                                     "John F. Kennedy was not there."]


def test_surnames_shared_by_siblings_stay_two_people():
    text = ("Anna Lindqvist and her brother Erik Lindqvist founded the bakery in 2010. Anna Lindqvist runs the "
            "shop, while Erik Lindqvist bakes. Lindqvist said the family would open a second shop in spring.")
    found = extract_actors(text)
    assert {"Anna Lindqvist", "Erik Lindqvist"} <= {a.name for a in found}


@pytest.fixture
def panjshir():
    path = SHARED_SAMPLES / "panjshir-article.txt"
    if not path.exists():
        pytest.skip(f"sample not available at {path}")
    return summarize("The World's Alliance against Taliban", path.read_text(encoding="utf-8"))


def test_panjshir_names_the_son_and_the_late_father_as_two_people(panjshir):
    found = {a.name for a in panjshir.key_actors}
    assert "Ahmad Massoud" in found
    assert "Ahmad Shah Massoud" in found


def test_panjshir_names_the_taliban(panjshir):
    assert "Taliban" in {a.name for a in panjshir.key_actors}


def test_panjshir_has_no_places_or_footer_as_actors(panjshir):
    found = {fold(a.name) for a in panjshir.key_actors}
    forbidden = {"panjshir", "panjshir valley", "afghanistan", "kabul", "hindu kush", "back to top button",
                 "content protection by", "washington post", "reuters"}
    assert not found & forbidden


def test_panjshir_actor_count_is_three_to_seven(panjshir):
    assert 3 <= len(panjshir.key_actors) <= 7


def test_organisation_names_keep_lowercase_connectors():
    text = ("The United Nations Assistance Mission in Afghanistan (UNAMA) called on both sides to protect civilians. "
            "The Organisation of the Petroleum Exporting Countries said output would fall.")
    found = names(text)
    assert "United Nations Assistance Mission in Afghanistan" in found
    assert "Organisation of the Petroleum Exporting Countries" in found


def test_a_place_after_in_stays_outside_the_organisation_name():
    text = "The Coastal Dockworkers Union in Valmora said the strike would go on. The union said talks had failed."
    assert "Coastal Dockworkers Union" in names(text)


def test_an_organisation_named_after_a_port_is_not_a_place():
    text = "The Kestrel Port Authority reached a deal with pilots on Monday, ending a week-long strike."
    assert "Kestrel Port Authority" in names(text)


def test_action_is_the_verb_phrase_of_the_subject():
    actors = {a.name: a for a in summarize("", FATHER_AND_SON).key_actors}
    assert actors["Rustam Karimov"].action == "said on Monday that his movement would fight on"


def test_a_passive_agent_becomes_the_subject_of_the_action():
    text = ("Rebels held the pass on Monday. The Mountain Front, led by Daler Nazarov, said it would not retreat. "
            "Officials in the capital said talks were possible.")
    actors = {a.name: a for a in extract_actors(text)}
    assert actors["Daler Nazarov"].action == "leads the Mountain Front"
    assert "by Daler" not in actors["Daler Nazarov"].action


def test_a_quoted_speaker_is_said_to_say_the_quote():
    text = ('"We will not back down," said Marta Okonjo, the union\'s general secretary. '
            "Harbourline Logistics said talks would resume on Thursday.")
    actors = {a.name: a for a in extract_actors(text)}
    assert actors["Marta Okonjo"].action == "said “We will not back down”"


def test_organisation_role_comes_from_a_relative_clause():
    text = ("Harbourline Logistics, which runs the terminals under a long concession, said automation would go ahead. "
            "Daniel Ferreira said the company had offered retraining.")
    actors = {a.name: a for a in extract_actors(text)}
    assert actors["Harbourline Logistics"].role == "runs the terminals under a long concession"


def test_organisation_role_comes_from_a_nearby_noun():
    text = ("The Coastal Dockworkers Union said 1,800 members joined the strike. "
            "Marta Okonjo, general secretary of the union, said the terminals would stay closed.")
    actors = {a.name: a for a in extract_actors(text)}
    assert actors["Coastal Dockworkers Union"].role == "the union"


def test_a_person_of_the_party_stays_apart_from_the_party():
    text = "The mayor, Agnes Molnar of the Civic Alliance, said she welcomed rivals. The Civic Alliance agreed."
    assert "Agnes Molnar" in names(text)


def actor_map(text: str) -> dict:
    return {a.name: a for a in extract_actors(text)}


CHESS = """
Fifteen-year-old Amara Okoye became the youngest national chess champion on Sunday, beating grandmaster Pavel
Lindgren in a final game. Lindgren, who has won the title five times, praised his opponent's endgame. "She found
moves I did not see coming, and I have seen most of them," he said. Her coach, Samuel Okoye, who is also her
father, said the family had paid for her travel for three years. The federation's president, Helen Marsh,
announced a new fund to support young players.
"""


def test_pronouns_are_never_actors():
    found = {fold(n) for n in actor_map(CHESS)}
    assert not found & {"i", "she", "he", "her"}


def test_an_age_prefix_is_stripped_from_the_name_and_kept_as_the_role():
    actors = actor_map(CHESS)
    assert "Amara Okoye" in actors
    assert not any("year-old" in name for name in actors)
    assert actors["Amara Okoye"].role == "fifteen-year-old"


def test_a_descriptor_before_the_name_is_the_role():
    assert actor_map(CHESS)["Helen Marsh"].role == "the federation's president"


def test_the_verb_after_an_apposed_name_is_the_action():
    assert actor_map(CHESS)["Helen Marsh"].action.startswith("announced a new fund to support young players")


def test_a_leading_descriptor_beats_a_trailing_relative_clause():
    assert actor_map(CHESS)["Samuel Okoye"].role == "her coach"


def test_a_lowercase_title_just_before_the_name_is_the_role():
    assert actor_map(CHESS)["Pavel Lindgren"].role == "grandmaster"


def test_a_possessive_appositive_after_the_name_is_the_role():
    text = "Lars Berg, Nordhaven's chief executive, said the company would apply for approval next year."
    assert actor_map(text)["Lars Berg"].role == "Nordhaven's chief executive"


def test_a_descriptor_starts_after_the_verb_of_the_clause_before():
    text = "The company said his deputy, Tran Thi Mai, would run the firm. Tran Thi Mai said she was ready."
    assert actor_map(text)["Tran Thi Mai"].role == "his deputy"


def test_a_company_noun_before_a_two_word_name_makes_it_an_organisation():
    text = "Shipping company Meridian Lines diverted four container ships to other ports on Friday."
    assert actor_map(text)["Meridian Lines"].kind == ActorKind.ORGANISATION


def test_a_name_that_says_it_will_act_is_an_organisation():
    text = "Solaris Grid said on Tuesday it will build a battery storage site near the coast."
    assert actor_map(text)["Solaris Grid"].kind == ActorKind.ORGANISATION


def test_a_person_saying_it_would_be_something_stays_a_person():
    text = "Anna Lewandowska said it would be the first time a court had ruled on smog."
    assert actor_map(text)["Anna Lewandowska"].kind == ActorKind.PERSON


def test_a_self_describing_organisation_does_not_borrow_a_nearby_company_noun():
    text = ("Nordhaven Biotech said its vaccine worked. The World Health Organization said it would review the data "
            "when the company submits it.")
    assert actor_map(text)["World Health Organization"].role != "the company"


def test_a_noun_after_a_modal_is_a_verb_not_a_role():
    text = "Egypt said Cairo would judge Ethiopia by its actions. Ethiopia rejected the warning on Monday."
    assert actor_map(text)["Ethiopia"].role == "country"


def test_a_councillor_title_is_the_role_not_part_of_the_name():
    text = "Councillor Marcus Holm, who voted against the plan, said the closures would hurt shops."
    assert actor_map(text)["Marcus Holm"].role == "Councillor"


def test_a_chamber_of_commerce_is_one_organisation():
    text = "The Riverton Chamber of Commerce asked the council to phase the work over two years."
    assert actor_map(text)["Riverton Chamber of Commerce"].kind == ActorKind.ORGANISATION


def test_the_acronym_us_is_not_mistaken_for_a_pronoun():
    text = "The US said it would send aid to the region. Officials in the US confirmed the shipment on Monday."
    assert "US" in actor_map(text)


# --------------------------------------------------------------------------- reader-grade output (issue 16)

AFGHAN_TITLE = ("After visa snags, all-girl Afghan team honored for 'courageous achievement' at international "
                "robotics competition")


def test_shorten_keeps_a_title_that_fits():
    assert shorten("Port strike ends", 90) == "Port strike ends"


def test_shorten_cuts_at_a_phrase_boundary_with_an_ellipsis():
    assert shorten(AFGHAN_TITLE, 90) == "After visa snags, all-girl Afghan team honored for 'courageous achievement'…"


def test_shorten_never_ends_on_a_function_word():
    for limit in range(20, 100, 7):
        assert not ends_badly(shorten(AFGHAN_TITLE, limit)), limit


def test_shorten_never_cuts_inside_a_quotation():
    title = 'Minister says "we will not back down from this fight over pensions whatever happens" in Paris'
    for limit in range(20, len(title)):
        cut = shorten(title, limit)
        assert len(cut) <= limit and cut.count('"') % 2 == 0, cut


def test_ends_badly_spots_a_dangling_preposition_and_an_open_quote():
    assert ends_badly("Team honored for 'courageous achievement' at")
    assert ends_badly('He said "we will win')
    assert not ends_badly("Team honored for 'courageous achievement'…")


CAPTIONED = """Friday, July 21, 2017

A storm caused a crane to fall into the mosque, killing 107 people, the Civil Defense Authority said.

pilgrims at the Grand Mosque in 2008.

The Afghan team arrived late. Image: United States Navy.

Director General Suleiman al-Amr said all the wounded had been taken to hospital.

Sources

"Crane collapse" — Example News, September 12, 2015"""


def test_captions_credits_datelines_and_sources_are_stripped():
    text, _, _ = strip_furniture(CAPTIONED)
    assert "Image:" not in text and "pilgrims at" not in text
    assert "July 21" not in text and "Example News" not in text
    assert "Suleiman al-Amr said" in text


def test_caption_credits_never_become_actors():
    found = names(CAPTIONED)
    assert not {"Image", "United States Navy"} & set(found)


INTERVIEW = """Wikinews interviewed the biologist Nick Bos about ants.

Wikinews: What first attracted you to ants?

Nick Bos: Me and a studymate kept beetles, butterflies and ants during our studies.

Wikinews: Do ants self-medicate?

Nick Bos: Infected ants chose food laced with hydrogen peroxide, which healthy ants avoided."""


def test_the_interviewer_is_not_an_actor_and_the_interviewee_is():
    found = names(INTERVIEW)
    assert "Nick Bos" in found
    assert "Wikinews" not in found


def test_questions_are_not_summary_sentences():
    assert "?" not in summarize("Ants", INTERVIEW).summary


def test_no_actor_gets_a_filler_action():
    for actor in summarize("", FATHER_AND_SON + VARIANTS).key_actors:
        assert len(actor.action.split()) >= 2 and not actor.action.startswith("is named")


def test_why_it_matters_is_left_empty_without_consequences():
    text = "Anna Berg opened a bakery on Main Street. She sells bread and cakes. Customers liked the rolls."
    assert summarize("Bakery opens", text).why_it_matters == ""


def test_why_it_matters_picks_the_sentence_about_consequences():
    text = ("The council met on Monday to discuss the harbour and its ageing cranes. Members heard a long report "
            "from the harbour master about the state of the quays. The chair thanked the staff for their patience. "
            "Several residents spoke about noise from the night shifts. The meeting ran late into the evening. "
            "The closure will cost 2,000 jobs and could raise prices by 5 percent next year.")
    assert summarize("Harbour", text).why_it_matters.startswith("The closure will cost")


def test_a_summary_never_ends_inside_an_open_quote():
    text = ('"We are so interested because we find a big chance," team member Rodaba Noori told the press, "to show '
            'that Afghan women can make robots too. The team won a silver medal on Tuesday. The contest ended.')
    summary = summarize("Robots", text).summary
    assert summary.count('"') % 2 == 0


def test_the_model_trims_a_sentence_initial_word_off_a_name():
    text = ("Yesterday Mohamed received VIP attention at the Google Science Fair. "
            "Mohamed said he was grateful for the support he had received.")
    assert "Yesterday Mohamed" not in names(text)


def test_the_rules_alone_still_work_without_the_model(monkeypatch):
    monkeypatch.setattr(ner, "pipeline", lambda: None)
    found = names(FATHER_AND_SON)
    assert "Rustam Karimov" in found and "Rustam Aziz Karimov" in found


def test_the_model_is_loaded_once_per_process():
    assert ner.pipeline() is ner.pipeline() is not None


@pytest.mark.django_db
def test_the_digest_subject_is_the_lead_story_cut_cleanly_plus_a_count():
    from tests.helpers.factories import summarized_article
    from worker import schedule
    from worker.models import Newsletter

    newsletter = Newsletter.objects.create(name="Morning", slug="morning")
    now = datetime.now(UTC)
    summarized_article(None, "After visa snags, all-girl Afghan team honored for 'courageous achievement' at "
                             "international robotics competition", published=now)
    summarized_article(None, "Port strike ends", published=now - timedelta(days=1))
    summarized_article(None, "Chess prodigy wins", published=now - timedelta(days=2))
    subject = schedule.build_digest(newsletter).subject
    assert subject.startswith("Morning: ") and subject.endswith("... and 2 more")
    assert len(subject) <= 80 and not ends_badly(subject.removesuffix(" and 2 more"))
