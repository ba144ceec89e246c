"""A newsletter's voice (summary language, length, tone, editorial instructions) and article languages.

The voice is part of the summary's cache key: the same article summarised for a French newsletter
and an English one is two summaries. Languages are ISO 639-1 codes ("en", "fr"); an article's is
detected offline by py3langid (BSD-3-Clause, model shipped in the wheel) when the source gave none.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache

import pycountry
from py3langid.langid import MODEL_FILE, LanguageIdentifier

# (sentences, at most words) per length choice; "standard" is what the prompt asks by default.
LENGTHS = {"short": ("1 to 2", 40), "standard": ("2 to 4", 80), "long": ("4 to 6", 130)}
DEFAULT_TONE = "neutral and factual"
# Below this probability the detector's guess is not stored: short or mixed text stays unknown.
MIN_CONFIDENCE = 0.8
DETECT_CHARS = 4000  # enough for a confident guess; the rest of a long article adds only time


@dataclass(frozen=True)
class Voice:
    language: str = ""  # ISO 639-1 code of the summaries; "" = each article's own language
    length: str = "standard"
    tone: str = ""
    instructions: str = ""

    @classmethod
    def of(cls, newsletter) -> "Voice":
        if newsletter is None:
            return cls()
        return cls(language=newsletter.summary_language, length=newsletter.summary_length or "standard",
                   tone=" ".join(newsletter.summary_tone.split()),
                   instructions=newsletter.summary_instructions.strip())

    @property
    def is_default(self) -> bool:
        return self == Voice()

    @property
    def max_words(self) -> int:
        return LENGTHS.get(self.length, LENGTHS["standard"])[1]

    def tag(self) -> str:
        """Short, stable, part of the cache key; "" for the default voice (old summaries stay valid)."""
        if self.is_default:
            return ""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def language_name(code: str) -> str:
    """ "fr" -> "French"; an unknown code is shown as given."""
    record = pycountry.languages.get(alpha_2=code) if len(code) == 2 else None
    return record.name if record is not None else code


@cache
def _identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> str:
    """ISO 639-1 code of `text`'s language, or "" when the detector is not confident."""
    sample = " ".join(text[:DETECT_CHARS].split())
    if len(sample) < 20:
        return ""
    code, probability = _identifier().classify(sample)
    return code if probability >= MIN_CONFIDENCE else ""
