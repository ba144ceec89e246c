"""Issue 16: the NER model reads only the names the rules found, each once, and the actor rules that
came with the faster path (openers, bare titles, quoted speech as the action)."""

import pytest

from worker.summarize import ner
from worker.summarize.offline import extract_actors

pytestmark = pytest.mark.skipif(not ner.available(), reason="the spaCy model is not installed")


def spans_of(sentence: str, *names: str, index: int = 0) -> list[tuple[int, int, int]]:
    return [(index, sentence.index(name), sentence.index(name) + len(name)) for name in names]


def test_the_model_reads_a_name_with_its_context_not_the_whole_sentence(monkeypatch):
    sentence = ("After a long meeting in the capital that ran late into the evening and beyond, "
                "the prime minister Najib Razak said the talks with the neighbours had gone well.")
    read: list[str] = []
    pipeline = ner.pipeline()

    class Spy:
        def pipe(self, texts, **options):
            texts = list(texts)
            read.extend(texts)
            return pipeline.pipe(texts, **options)

    monkeypatch.setattr(ner, "pipeline", lambda: Spy())
    [found] = ner.span_entities([sentence], spans_of(sentence, "Najib Razak"))
    assert [(sentence[e.start:e.end], e.label) for e in found] == [("Najib Razak", "PERSON")]
    assert len(read) == 1 and "Najib Razak" in read[0] and len(read[0].split()) <= 2 + 2 * ner.CONTEXT_WORDS


def test_a_repeated_name_or_part_of_a_name_is_not_read_again(monkeypatch):
    sentences = ["Prime Minister Barack Obama arrived in Cairo on Thursday for a speech.",
                 "Obama said the United States would seek a new beginning with the region.",
                 "Later Barack Obama met students at the university."]
    calls: list[int] = []
    pipeline = ner.pipeline()

    class Spy:
        def pipe(self, texts, **options):
            texts = list(texts)
            calls.append(len(texts))
            return pipeline.pipe(texts, **options)

    monkeypatch.setattr(ner, "pipeline", lambda: Spy())
    spans = [*spans_of(sentences[0], "Barack Obama"), *spans_of(sentences[1], "Obama", index=1),
             *spans_of(sentences[2], "Barack Obama", index=2)]
    found = ner.span_entities(sentences, spans)
    assert sum(calls) == 1  # one fragment: the part and the repeat reuse the first reading
    assert [[(sentences[k][e.start:e.end], e.label) for e in entities] for k, entities in zip(
        (0, 1, 2), found, strict=True)] == [[("Barack Obama", "PERSON")], [("Obama", "PERSON")],
                                            [("Barack Obama", "PERSON")]]


def test_only_the_ner_component_runs():
    assert ner.pipeline().pipe_names == ["ner"]


def test_sentence_openers_and_bare_titles_are_never_names():
    text = ("Suddenly Obama was here, in a hall full of students, and he spoke for an hour about the region. "
            "Whenever Obama spoke of peace, the hall applauded him loudly. The Pope sent a message to the "
            "students. The Pope said the region needed patience.")
    names = [a.name for a in extract_actors(text)]
    assert not any(n.startswith(("Suddenly", "Whenever")) or n == "Pope" for n in names)


def test_what_a_speaker_said_is_the_action():
    text = ('Malaysia\'s Prime Minister, Najib Razak said, "We are in contact with all relevant parties to '
            'find a solution." "Anyone with information should call the police", said Detective Inspector '
            'Steven Jones. The boats were turned away on Friday.')
    actions = {a.name: a.action for a in extract_actors(text)}
    assert actions["Najib Razak"].startswith("said “We are in contact with all relevant parties")
    assert actions["Steven Jones"].startswith("said “Anyone with information should call the police")
