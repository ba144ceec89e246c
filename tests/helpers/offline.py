"""The offline engine's actors as a test reads them, and the mark for tests that need its spaCy model."""

import pytest

from worker.summarize import ner
from worker.summarize.offline import extract_actors
from worker.text import split_sentences

needs_model = pytest.mark.skipif(not ner.available(), reason="the spaCy model is not installed")


def actors_of(text: str) -> dict[str, str]:
    """Name -> action of every actor the offline engine finds in `text`."""
    return {a.name: a.action for a in extract_actors(text, split_sentences(text))}
