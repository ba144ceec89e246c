"""Evidence quoted slightly wrong snaps back to the article's sentence; invented quotes never do."""

from worker.summarize.grounding import Article

TEXT = ("The Coastal Dockworkers Union said about 1,800 members joined the strike, halting three terminals. "
        "“We are not against technology, we are against being thrown away,” said Marta Okonjo, the union's "
        "general secretary. Harbourline Logistics said the plan would go ahead.")
SENTENCE = "The Coastal Dockworkers Union said about 1,800 members joined the strike, halting three terminals."
QUOTE = ("“We are not against technology, we are against being thrown away,” said Marta Okonjo, the union's "
         "general secretary.")


def quote(evidence: str) -> str | None:
    return Article(TEXT).quote(evidence)


def test_a_dropped_comma_snaps_to_the_sentence():
    assert quote(SENTENCE.replace("strike,", "strike")) == SENTENCE


def test_a_dropped_final_stop_snaps_to_the_sentence():
    assert quote(SENTENCE.rstrip(".")) == SENTENCE


def test_straight_quotes_for_curly_ones_snap_to_the_sentence():
    assert quote(QUOTE.replace("“", '"').replace("”", '"').replace("’", "'")) == QUOTE


def test_an_ellipsis_in_the_middle_snaps_to_the_sentence():
    assert quote("The Coastal Dockworkers Union said ... joined the strike, halting three terminals") == SENTENCE


def test_a_bracketed_ellipsis_snaps_too():
    assert quote("The Coastal Dockworkers Union said [...] halting three terminals.") == SENTENCE


def test_a_thousands_separator_dropped_is_the_same_number():
    assert quote(SENTENCE.replace("1,800", "1800")) == SENTENCE


def test_pieces_out_of_order_do_not_snap():
    assert quote("halting three terminals ... The Coastal Dockworkers Union said") is None


def test_an_inserted_negation_is_an_invented_quote():
    assert quote("Harbourline Logistics said the plan would not go ahead.") is None


def test_a_removed_negation_is_an_invented_quote():
    assert quote(QUOTE.replace("We are not against", "We are against")) is None


def test_a_changed_number_is_an_invented_quote():
    assert quote(SENTENCE.replace("1,800", "2,800")) is None


def test_a_sentence_from_elsewhere_is_an_invented_quote():
    assert quote("The port operator said the cranes would be replaced by next spring.") is None
