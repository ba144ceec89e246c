"""Build tests/data/bounces/ (messages + manifest.json) from two public corpora.

    python bench/bounces_corpus_build.py FLUFL_SDIST_DIR SISIMAI_SET_OF_EMAILS P5_SISIMAI [PER_ENGINE]

CPYTHON_EMAIL_DATA (optional 5th argument, after PER_ENGINE): CPython's Lib/test/test_email/data
(PSF-2.0): ordinary messages, the non-bounce side; the four DSN fixtures among them are left out.
Sisimai's maildir/not (its own non-bounces) and flufl's groupwise_03 (a non-bounce that confused a
detector) are labelled `none` too.

FLUFL_SDIST_DIR: the unpacked flufl.bounce 6.0.0 sdist (Apache-2.0): tests/data/*.txt, expected
addresses from tests/test_detectors.py (its DETECTORS table, hand-written by its authors).
SISIMAI_SET_OF_EMAILS: a checkout of github.com/sisimai/set-of-emails (BSD-2-Clause), maildir/bsd.
P5_SISIMAI: a checkout of github.com/sisimai/p5-sisimai (BSD-2-Clause): t/*-lhost-*.t, t/*-rhost-*.t,
t/890-rfc3464.t, t/891-rfc3834.t, t/899-arf.t hold the hand-curated reason of every message.

Expected class of a Sisimai message: its curated reason through REASON_CLASS below. Expected
recipient: the To: of the returned original message (whom the mail was sent to), when the
curated table lists one recipient and the original has exactly one To: address; else none
(then the message counts for recognition and class, not for the exact-address rate).
"""

import ast
import json
import re
import shutil
import sys
from email import message_from_bytes, policy
from email.utils import getaddresses
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"

# Sisimai reason -> our class. hard: the address cannot receive mail; soft: try again later (the
# mailbox, the server or the network); policy: the receiving side refused us (reputation, spam,
# authentication, content), not the recipient's fault; complaint: a feedback report; none: an
# auto-reply, not a bounce.
REASON_CLASS = {
    "userunknown": "hard", "hostunknown": "hard", "hasmoved": "hard", "notaccept": "hard", "suspend": "hard",
    "mailboxfull": "soft", "exceedlimit": "soft", "systemfull": "soft", "systemerror": "soft",
    "networkerror": "soft", "expired": "soft", "toomanyconn": "soft", "speeding": "soft",
    "ratelimited": "soft", "mailererror": "soft", "mesgtoobig": "soft", "syntaxerror": "soft",
    "undefined": "soft", "onhold": "soft", "emptyaddress": "soft", "failedstarttls": "soft",
    "blocked": "policy", "spamdetected": "policy", "policyviolation": "policy", "rejected": "policy",
    "filtered": "policy", "securityerror": "policy", "authfailure": "policy", "badreputation": "policy",
    "virusdetected": "policy", "contenterror": "policy", "notcompliantrfc": "policy", "requireptr": "policy",
    "norelaying": "policy",
    "feedback": "complaint",
    "vacation": "none", "delivered": "none",
}
FLUFL_HAND_LABELS = {
    # flufl lists no address for these on purpose; their class read by hand.
    "simple_42.txt": ("policy", []), "simple_43.txt": ("policy", []), "groupwise_03.txt": ("none", []),
}
CPYTHON_REPORTS = {"msg_05.txt", "msg_16.txt", "msg_25.txt", "msg_43.txt"}


def flufl(root: Path) -> list[dict]:
    tree = ast.parse((root / "tests" / "test_detectors.py").read_text())
    table = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", "") == "DETECTORS")
    rows = {}
    for _module, name, addresses, temporary in ast.literal_eval(table):
        if not addresses and name not in FLUFL_HAND_LABELS:
            continue  # "just make sure it doesn't throw" rows
        klass = "delayed" if temporary else "bounce"
        klass, addresses = FLUFL_HAND_LABELS.get(name, (klass, addresses))
        rows[name] = {"file": f"flufl/{name}", "source": "flufl.bounce 6.0.0 tests (Apache-2.0)",
                      "class": klass, "recipients": sorted(a.decode().lower() for a in addresses)}
    (OUT / "flufl").mkdir(parents=True, exist_ok=True)
    for name in rows:
        shutil.copy(root / "tests" / "data" / name, OUT / "flufl" / name)
    return list(rows.values())


EXPECTED = re.compile(r"'(\d+)'\s*=>\s*\[((?:\s*\[[^\]]*\],?)+)\s*\]")
ENTRY = re.compile(r"\[\s*'([^']*)',\s*'([^']*)',\s*'([^']*)'")


def original_to(raw: bytes) -> list[str]:
    message = message_from_bytes(raw, policy=policy.compat32)
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            if isinstance(inner, list):
                inner = inner[0]
            else:
                inner = message_from_bytes(part.get_payload(decode=True) or b"", policy=policy.compat32)
            return [a for _, a in getaddresses(inner.get_all("To", [])) if "@" in a]
    return []


def sisimai(emails: Path, tests: Path, per_engine: int) -> list[dict]:
    rows = []
    (OUT / "sisimai").mkdir(parents=True, exist_ok=True)
    for test in sorted((tests / "t").glob("*.t")):
        prefix = re.sub(r"^\d+-", "", test.stem)
        if not re.match(r"(lhost|rhost)-|rfc3464$|rfc3834$|arf$", prefix):
            continue
        taken = 0
        for index, entries in EXPECTED.findall(test.read_text(errors="replace")):
            source = emails / "maildir" / "bsd" / f"{prefix}-{index}.eml"
            found = ENTRY.findall(entries)
            if not source.exists() or not found or taken >= per_engine:
                continue
            klass = REASON_CLASS.get(found[0][2])
            if klass is None:
                print(f"unmapped reason {found[0][2]} in {source.name}", file=sys.stderr)
                continue
            raw = source.read_bytes()
            to = original_to(raw)
            recipients = [to[0].lower()] if len(found) == 1 and len(to) == 1 and klass != "none" else []
            shutil.copy(source, OUT / "sisimai" / source.name)
            rows.append({"file": f"sisimai/{source.name}", "source": "sisimai set-of-emails (BSD-2-Clause)",
                         "class": klass, "reason": found[0][2], "status": found[0][0], "recipients": recipients})
            taken += 1
    for source in sorted((emails / "maildir" / "not").glob("*.eml")):
        shutil.copy(source, OUT / "sisimai" / source.name)
        rows.append({"file": f"sisimai/{source.name}", "source": "sisimai set-of-emails (BSD-2-Clause)",
                     "class": "none", "recipients": []})
    return rows


def cpython(data: Path) -> list[dict]:
    (OUT / "cpython").mkdir(parents=True, exist_ok=True)
    rows = []
    for source in sorted(data.glob("msg_*.txt")):
        if source.name in CPYTHON_REPORTS:
            continue
        shutil.copy(source, OUT / "cpython" / source.name)
        rows.append({"file": f"cpython/{source.name}", "source": "CPython test_email data (PSF-2.0)",
                     "class": "none", "recipients": []})
    return rows


def main() -> None:
    flufl_root, emails, tests = (Path(a) for a in sys.argv[1:4])
    per_engine = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    rows = flufl(flufl_root) + sisimai(emails, tests, per_engine)
    if len(sys.argv) > 5:
        rows += cpython(Path(sys.argv[5]))
    (OUT / "manifest.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{len(rows)} messages")


if __name__ == "__main__":
    main()
