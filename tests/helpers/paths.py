"""Where the tests find the repository, their data and the samples shared beside the worktree."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
SHARED_SAMPLES = REPO.parent / "shared" / "samples"
