"""`python -m llama_cpp.server` without ggml's extra weight buffers (the AMX repack).

On VMs that advertise AMX without granting its tile state (Firecracker, some CI runners) the
prebuilt llama.cpp segfaults in ggml_backend_amx_mul_mat on the first request; llama.cpp's own
server has `--no-repack` for this, llama-cpp-python's has no switch, so this launcher turns the
model parameter off before the server loads the model. Arguments are the server's own.
"""

import runpy

import llama_cpp.llama_cpp as bindings

_defaults = bindings.llama_model_default_params


def _without_extra_buffers() -> bindings.llama_model_params:
    params = _defaults()
    params.use_extra_bufts = False  # repacking only speeds up large models; AMX is the one that crashes
    return params


bindings.llama_model_default_params = _without_extra_buffers
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
