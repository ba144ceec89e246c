"""The real-server tests of test_llm_real_server.py, against a third server family: Hugging Face's
`transformers serve` (transformers[serving], PyTorch on CPU), with the same Gemma 3 270M, whose GGUF
transformers dequantizes once into a local model directory (real_servers.transformers_model_dir).
The server runs offline (HF_HUB_OFFLINE) on a free port. A missing package skips with the reason;
scripts/test installs them when it can (README, "Real servers").

The same tests, the same fixtures: only the server family differs. transformers serve neither
enforces nor refuses `response_format` (it logs "Ignoring unsupported fields" and answers); the
engine reads that from its first answer, which is not a JSON object, and puts the schema into the
prompt from then on (json_object), which test_the_detected_mode_is_remembered_for_the_server asserts.
"""

import pytest

from tests.summarize.real_servers import TRANSFORMERS

# The fixtures and tests are imported to run here again, against this family.
from tests.summarize.test_llm_real_server import (  # noqa: F401
    pointed,
    real_server,
    test_the_detected_mode_is_remembered_for_the_server,
    test_the_server_accepts_the_request_and_the_answer_is_validated_and_grounded,
    test_whatever_the_model_invents_is_dropped_and_flagged,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db,
              pytest.mark.parametrize("real_server", [TRANSFORMERS], indirect=True, scope="module")]


@pytest.fixture(autouse=True)
def shorter_answers(pointed, settings):  # noqa: F811
    # PyTorch decodes this model at 0.1-0.3 s a token on one core, 3-10 times slower than ggml. The
    # base 270M model never gets to a valid summary here (it echoes the prompt until the limit; README,
    # "Real servers"), so 200 tokens prove the same things as 400 in half the suite's time.
    settings.NEWSDIGEST_LLM_MAX_OUTPUT_TOKENS = 200


# Collected last: the server goes on decoding the requests this test gives up on.
from tests.summarize.test_llm_real_server import test_the_timeout_is_honoured  # noqa: E402, F401
