"""`transformers serve` pinned to one local model directory, answering under the directory's name.

transformers serve answers only requests whose `model` is the model it was started with (else 400),
and takes a local path for a model; so this launcher serves `--model-dir`'s name from its parent
directory, and the engine asks for the same alias as with the other server families. The Hub is
off (HF_HUB_OFFLINE): everything is on disk. /v1/models lists the Hub cache, and fails while there
is none, so the cache is an empty directory of its own. The CLI's `serve` command is called
directly: the `transformers` entry point first asks PyPI whether a newer release exists.
PyTorch computes on one thread unless OMP_NUM_THREADS says otherwise: on the shared 2-core machine
two threads spin waiting for each other (Gemma 3 270M: 0.72 s of CPU per generated token with two,
0.10 s with one, load average 6.8). Other arguments are serve's own.
"""

import argparse
import os
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--model-dir", type=Path, required=True)
known, rest = parser.parse_known_args()
hub_cache = known.model_dir.parent / "hub-cache"
hub_cache.mkdir(exist_ok=True)
# Read when huggingface_hub is imported, so set before transformers is.
os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub_cache))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.chdir(known.model_dir.parent)

from transformers.cli.transformers import app  # noqa: E402

app(["serve", known.model_dir.name, *rest])
