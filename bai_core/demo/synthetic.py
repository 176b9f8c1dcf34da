"""Synthetic checkpoint families: a pretrained / instruct / reasoning trio of random Llama weights, built offline.

Tensors are generated directly (no model is instantiated), shard by shard, so a 1 GB family builds with about one
shard in memory. instruct and reasoning are the pretrained weights plus small, different perturbations, the way
fine-tunes sit near their base. Each member gets a tiny character-level tokenizer and its own chat template, so
which tokenizer a merge keeps is observable. These are for tests, benchmarks and the offline demo; the trained
demo family (real behaviour, not random weights) lives elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from bai_core.config import ROLES
from bai_core.demo.tokenizer import write_char_tokenizer
from bai_core.io.checkpoint import CONFIG_FILE
from bai_core.io.checkpoint_writer import plan_shards, shard_names
from bai_core.io.safetensors_file import CODES

CHAT_TEMPLATES = {
    "pretrained": "{% for m in messages %}{{ m['content'] }}\n{% endfor %}",
    "instruct": "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}",
    "reasoning": "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: <think>{% endif %}",
}


@dataclass(frozen=True)
class SyntheticSpec:
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int = 128
    tie_word_embeddings: bool = True
    dtype: str = "bfloat16"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


# About 1 GB per checkpoint in bfloat16 (520M parameters; the largest tensor, the embedding, is 65.5M).
BENCHMARK_SPEC = SyntheticSpec(
    hidden_size=2048, num_layers=9, num_heads=16, num_kv_heads=16, intermediate_size=5504, vocab_size=32000
)


# The offline demo's size (demo://synthetic/...): builds in seconds, big enough to look like a model.
DEMO_SPEC = SyntheticSpec(hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=512)


def llama_config(spec: SyntheticSpec) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
        "vocab_size": spec.vocab_size,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": spec.tie_word_embeddings,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "torch_dtype": spec.dtype,
    }


def tensor_shapes(spec: SyntheticSpec) -> list[tuple[str, tuple[int, ...]]]:
    h, i, v = spec.hidden_size, spec.intermediate_size, spec.vocab_size
    q, kv = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    shapes = [("model.embed_tokens.weight", (v, h))]
    for n in range(spec.num_layers):
        p = f"model.layers.{n}."
        shapes += [
            (p + "input_layernorm.weight", (h,)),
            (p + "self_attn.q_proj.weight", (q, h)),
            (p + "self_attn.k_proj.weight", (kv, h)),
            (p + "self_attn.v_proj.weight", (kv, h)),
            (p + "self_attn.o_proj.weight", (h, q)),
            (p + "post_attention_layernorm.weight", (h,)),
            (p + "mlp.gate_proj.weight", (i, h)),
            (p + "mlp.up_proj.weight", (i, h)),
            (p + "mlp.down_proj.weight", (h, i)),
        ]
    shapes.append(("model.norm.weight", (h,)))
    if not spec.tie_word_embeddings:
        shapes.append(("lm_head.weight", (v, h)))
    return shapes


def _stable_seed(*parts) -> int:
    """A seed from the parts that does not change between processes (unlike `hash`)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def _tensor(name: str, shape: tuple[int, ...], role: str, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """The pretrained value plus, for fine-tunes, a role-specific perturbation; deterministic per (seed, name)."""
    base_gen = torch.Generator().manual_seed(_stable_seed(seed, name))
    if name.endswith("norm.weight"):
        value = 1.0 + 0.1 * torch.randn(shape, generator=base_gen)
    else:
        value = torch.randn(shape, generator=base_gen) * (shape[-1] ** -0.5)
    if role != "pretrained":
        delta_gen = torch.Generator().manual_seed(_stable_seed(seed, name, role))
        value += 0.2 * value.std() * torch.randn(shape, generator=delta_gen)
    return value.to(dtype)


def write_synthetic_checkpoint(
    folder: Path, spec: SyntheticSpec, role: str = "pretrained", seed: int = 0, max_shard_bytes: int | None = None
) -> Path:
    """Write one member of a synthetic family (weights, config, tokenizer) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    dtype = getattr(torch, spec.dtype)
    code = CODES[spec.dtype]
    specs = [(name, code, shape) for name, shape in tensor_shapes(spec)]
    shards = plan_shards(specs, max_shard_bytes or 1 << 62)
    files = shard_names(len(shards))
    weight_map = {}
    for file, shard in zip(files, shards):
        tensors = {name: _tensor(name, shape, role, seed, dtype) for name, _, shape in shard}
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in tensors})
        del tensors
    if len(files) > 1:
        total = sum(torch.Size(s).numel() * dtype.itemsize for _, _, s in specs)
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (folder / CONFIG_FILE).write_text(json.dumps(llama_config(spec), indent=2))
    write_char_tokenizer(folder, CHAT_TEMPLATES[role], spec.vocab_size)
    generation = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "max_new_tokens": 32 if role != "reasoning" else 96}
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2))
    return folder


def write_synthetic_family(
    root: Path, spec: SyntheticSpec = SyntheticSpec(), seed: int = 0, max_shard_bytes: int | None = None
) -> dict[str, Path]:
    return {
        role: write_synthetic_checkpoint(root / role, spec, role, seed, max_shard_bytes) for role in ROLES
    }
