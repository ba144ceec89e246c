"""Scoring bounce recognition on tests/data/bounces/ (see its README): ours next to flufl.bounce alone.

Rates, each over the messages it applies to:
- recognised: bounce and complaint messages reported as such (a delay warning counts as recognised);
- exact address: messages with a labelled recipient whose reported address set equals the label;
- class: hard/soft/policy/complaint-labelled messages given that class;
- false bounces: non-bounce messages (auto-replies, ordinary mail) reported as a bounce or complaint;
- soft/policy as hard: soft- or policy-labelled messages classified hard (they would suppress at once).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy

from flufl.bounce import all_failures

from tests.helpers.paths import DATA
from worker import bounce_reports

CORPUS = DATA / "bounces"
CLASSES = ("hard", "soft", "policy", "complaint")


@dataclass(frozen=True)
class Verdict:
    kind: str  # bounce, complaint, none
    pairs: tuple[tuple[str, str], ...]  # (address, class) per failure, in report order

    @property
    def emails(self) -> frozenset[str]:
        return frozenset(e for e, _ in self.pairs)

    def klass(self, recipient: str = "") -> str:
        """The class given to the labelled recipient, else to the first failure ('' for none)."""
        return next((k for e, k in self.pairs if e == recipient), self.pairs[0][1] if self.pairs else "")


@dataclass
class Score:
    counts: dict[str, list[int]] = field(default_factory=lambda: {k: [0, 0] for k in (
        "recognised", "exact address", "class", "false bounces", "soft/policy as hard")})
    misses: list[str] = field(default_factory=list)

    def add(self, name: str, hit: bool, file: str) -> None:
        self.counts[name][0] += hit
        self.counts[name][1] += 1
        if hit == (name in ("false bounces", "soft/policy as hard")):
            self.misses.append(f"{name}: {file}")

    def rate(self, name: str) -> float:
        hits, total = self.counts[name]
        return hits / total if total else 0.0


def manifest() -> list[dict]:
    return json.loads((CORPUS / "manifest.json").read_text())


def ours(raw: bytes) -> Verdict:
    report = bounce_reports.read(raw)
    return _verdict(report.kind, [(f.email, f.klass) for f in report.failures])


def flufl_alone(raw: bytes) -> Verdict:
    """flufl.bounce as the old handler would use it: permanent failures hard, warnings delayed."""
    try:
        temporary, permanent = all_failures(message_from_bytes(raw, policy=policy.compat32))
    except Exception:  # noqa: BLE001 - a detector raising means flufl recognised nothing
        return _verdict("none", [])
    pairs = [(e.decode(errors="replace").lower(), "hard") for e in sorted(permanent)]
    pairs += [(e.decode(errors="replace").lower(), "delayed") for e in sorted(temporary)]
    return _verdict("bounce" if pairs else "none", pairs)


def _verdict(kind: str, pairs: list[tuple[str, str]]) -> Verdict:
    return Verdict(kind, tuple(pairs))


def score(reader: Callable[[bytes], Verdict]) -> Score:
    result = Score()
    for row in manifest():
        raw = (CORPUS / row["file"]).read_bytes()
        verdict = reader(raw)
        expected, file = row["class"], row["file"]
        if expected == "none":
            result.add("false bounces", verdict.kind != "none", file)
            continue
        result.add("recognised", verdict.kind != "none", file)
        if row["recipients"]:
            result.add("exact address", verdict.emails == set(row["recipients"]), file)
        # A complaint whose report redacts the recipient is still a complaint.
        klass = verdict.klass(row["recipients"][0] if row["recipients"] else "") or (
            "complaint" if verdict.kind == "complaint" else "")
        if expected in CLASSES:
            result.add("class", klass == expected, file)
        if expected in ("soft", "policy"):
            result.add("soft/policy as hard", klass == "hard", file)
    return result
