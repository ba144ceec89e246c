import re
import shutil
import subprocess

import pytest

from tests.helpers.factories import make_digest
from worker import deliver, render
from worker.models import Subscriber

SPAMASSASSIN = shutil.which("spamassassin")
pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(SPAMASSASSIN is None, reason="needs Debian spamassassin")]


def spam_report(raw: bytes, home) -> tuple[float, dict[str, float]]:
    """Local rules only (-L: no DNS or network tests); score and the rules hit with their points."""
    result = subprocess.run([SPAMASSASSIN, "-L", "-t"], input=raw, capture_output=True, timeout=120,
                            env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, check=True)
    report = result.stdout.decode("utf-8", "replace")
    score = float(re.search(r"Content analysis details:\s+\((-?\d+(?:\.\d+)?) points", report).group(1))
    rules = {name: float(points) for points, name in
             re.findall(r"^\s*(-?\d+\.\d+)\s+([A-Z][A-Z0-9_]+)\s", report.split("Content analysis details:")[1], re.M)}
    return score, rules


def test_demo_like_digest_scores_low_on_spamassassin(settings, outbox, tmp_path):
    settings.EMAIL_BACKEND = "worker.mail.OutboxBackend"
    settings.SITE_URL = "https://news.example.com"
    digest = make_digest(6, from_email="digest@news.example.com")
    subscriber = Subscriber.objects.get(email__startswith="ada@")
    deliver.build_message(digest, subscriber, render.ensure_rendered(digest)).send()
    score, rules = spam_report(next(outbox.glob("*.eml")).read_bytes(), tmp_path)
    print(f"spamassassin score {score}, rules {rules}")
    assert score <= 1.0, rules
    assert all(points <= 0.5 for points in rules.values()), rules
    assert "MPART_ALT_DIFF" not in rules
