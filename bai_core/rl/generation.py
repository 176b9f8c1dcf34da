"""How the train stage generates its completions (`train.generation`): transformers' `generate` in the training
process (the default), or vLLM, mapped onto TRL's own vLLM arguments.

- `mode: colocate`: vLLM runs inside each training rank, on its GPU, sharing it (`gpu_memory_utilization` is vLLM's
  share of that GPU's memory; `tensor_parallel_size` shards vLLM's copy over that many of the ranks' GPUs).
- `mode: server`: vLLM runs as a separate server on GPUs of its own, started by you with TRL's
  `CUDA_VISIBLE_DEVICES=<its GPUs> trl vllm-serve --model <the actor's start> --tensor-parallel-size N`; the training
  ranks use the other GPUs. They send generation requests to `server_url` (HTTP, default port 8000) and push the
  updated weights after each step over a NCCL group on port 51216 (TRL's `vllm_group_port`), so both ports must be
  open between the training machine and the server's.

vLLM is not a bai dependency: asking for it where it is not installed, or where its version is outside what TRL
supports, is a one-line error before anything is merged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bai_core.errors import BaiError
from bai_core.settings import Strict

# The vLLM versions TRL 1.16 supports (trl/import_utils.py warns outside them; bai refuses).
VLLM_VERSIONS = ("0.22.0", "0.31.0")


class GenerationSettings(Strict):
    """`train.generation`: who generates the completions."""

    backend: Literal["transformers", "vllm"] = Field("transformers", description="transformers: in the training "
                                                     "process; vllm: vLLM, colocated or as a server.")
    mode: Literal["colocate", "server"] = Field("colocate", description="vLLM inside each rank, or a separate "
                                                "`trl vllm-serve` server.")
    server_url: str | None = Field(None, description="server mode: the vLLM server's address, e.g. "
                                                     "http://10.0.0.7:8000 (default TRL's, port 8000 here).")
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="colocate: vLLM's share of each GPU's memory.")
    tensor_parallel_size: int = Field(1, gt=0, description="colocate: ranks' GPUs one vLLM copy is sharded over "
                                                           "(server mode: set it on trl vllm-serve).")

    @model_validator(mode="after")
    def _consistent(self):
        # Compared with the defaults, not with what was given: a dumped config (every field present) reads back.
        changed = sorted(name for name, field in type(self).model_fields.items()
                         if name != "backend" and getattr(self, name) != field.default)
        if self.backend == "transformers" and changed:
            raise ValueError(f"{', '.join(changed)}: vLLM settings, but backend is transformers; set backend: vllm")
        if self.mode == "server" and "gpu_memory_utilization" in changed:
            raise ValueError("gpu_memory_utilization applies to colocate mode; a server takes its own "
                             "(trl vllm-serve --gpu-memory-utilization)")
        if self.mode == "server" and self.tensor_parallel_size != 1:
            raise ValueError("tensor_parallel_size applies to colocate mode; give it to the server "
                             "(trl vllm-serve --tensor-parallel-size)")
        if self.mode == "colocate" and self.server_url is not None:
            raise ValueError("server_url applies to server mode; set mode: server")
        return self

    def trl_arguments(self) -> dict:
        """TRL's names for these settings (GRPOConfig and RLOOConfig share them)."""
        if self.backend == "transformers":
            return {}
        arguments = {"use_vllm": True, "vllm_mode": self.mode}
        if self.mode == "colocate":
            arguments.update(vllm_gpu_memory_utilization=self.gpu_memory_utilization,
                             vllm_tensor_parallel_size=self.tensor_parallel_size)
        elif self.server_url is not None:
            arguments["vllm_server_base_url"] = self.server_url
        return arguments


TRL_NAMES = ("use_vllm", "vllm_mode", "vllm_server_base_url", "vllm_server_host", "vllm_server_port",
             "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size")


def check_generation(generation: GenerationSettings, installed: str | None = "look") -> None:
    """vLLM asked for: it must be installed here, in a version TRL supports. `installed`: the version found (the
    default looks it up; None: not installed)."""
    if generation.backend != "vllm":
        return
    if installed == "look":
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("vllm")
        except PackageNotFoundError:
            installed = None
    low, high = VLLM_VERSIONS
    if installed is None:
        raise BaiError(f"train.generation.backend vllm: vLLM is not installed here (pip install 'vllm>={low},"
                       f"<={high}'), or use backend: transformers")
    from packaging.version import Version

    base = Version(Version(installed).base_version)
    if not Version(low) <= base <= Version(high):
        raise BaiError(f"train.generation.backend vllm: vLLM {installed} is installed, and TRL supports "
                       f"{low} to {high}; install one of those")
