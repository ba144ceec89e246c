"""What every process loads (issue 18: peak RSS per worker): the openai SDK and datasketch (with SciPy) are
imported by the code that uses them, not by every worker and web process at start-up."""

import subprocess
import sys

from tests.helpers.paths import REPO


def test_a_worker_process_starts_without_the_llm_sdk_or_scipy(tmp_path):
    probe = ("import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'worker.settings'); "
             "import django; django.setup(); import worker.tasks, worker.celery_app, worker.web.urls; "
             "print(' '.join(sorted(m for m in ('openai', 'scipy', 'datasketch') if m in sys.modules)))")
    env = {"PATH": "/usr/bin:/bin", "NEWSDIGEST_VAR_DIR": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""

