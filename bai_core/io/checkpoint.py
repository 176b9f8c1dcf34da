"""A Hugging Face checkpoint folder as an object: its config, its tensors (where each one lives) and its side files.

Only safetensors weights are read. A folder holding pickle weights (`pytorch_model.bin`) is refused with a hint,
never unpickled: loading a pickle runs arbitrary code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from bai_core.errors import BaiError
from bai_core.io.chat_template import ChatTemplate
from bai_core.io.safetensors_file import TensorInfo, read_header

CONFIG_FILE = "config.json"
SINGLE_WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")

# Files that travel with the tokenizer: they decide how text becomes tokens and how the model is prompted.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.json",
    "chat_template.jinja",
    "generation_config.json",
)

# Config entries that fix tensor shapes or meaning: checkpoints that differ here cannot be merged.
ARCHITECTURE_KEYS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "num_experts",
    "num_local_experts",
    "moe_intermediate_size",
)

# For checkpoints saved with tied embeddings: the output-embedding name and the input embedding it reads from.
TIED_OUTPUT_EMBEDDINGS = {"lm_head.weight": ("model.embed_tokens.weight", "transformer.wte.weight")}


@dataclass
class Checkpoint:
    """A validated local checkpoint folder. `tensors` maps each tensor name to where its bytes are."""

    path: Path
    config: dict
    tensors: dict[str, TensorInfo]
    weight_files: list[Path]
    # Tensors this checkpoint serves from another one's bytes (tied embeddings materialized as lm_head).
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path) -> Checkpoint:
        path = Path(path)
        if not path.is_dir():
            raise BaiError(f"{path}: checkpoint folder not found")
        config_path = path / CONFIG_FILE
        if not config_path.is_file():
            raise BaiError(f"{config_path}: missing (a Hugging Face checkpoint folder needs its config.json)")
        try:
            config = json.loads(config_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BaiError(f"{config_path}: not valid JSON ({e})") from None
        if not isinstance(config, dict):
            raise BaiError(f"{config_path}: not a JSON object")
        _refuse_quantized(config_path, config)
        weight_files = _weight_files(path)
        tensors: dict[str, TensorInfo] = {}
        for file in weight_files:
            file_tensors, _ = read_header(file)
            for name, info in file_tensors.items():
                if name in tensors:
                    raise BaiError(f"{file}: tensor {name!r} also appears in {tensors[name].file.name}")
                tensors[name] = info
        index_path = path / INDEX_FILE
        if index_path.is_file():
            _check_index_agrees(index_path, tensors)
        return cls(path=path, config=config, tensors=tensors, weight_files=weight_files)

    @property
    def tie_word_embeddings(self) -> bool:
        # transformers' default for tie_word_embeddings is True when the key is absent.
        return bool(self.config.get("tie_word_embeddings", True))

    def info(self, name: str) -> TensorInfo:
        """Where to read tensor `name`, following an alias for a materialized tied embedding."""
        return self.tensors[self.aliases.get(name, name)]

    def tensor_names(self) -> list[str]:
        """Names in file order (shard by shard, then by offset): the order a reader of the output expects."""
        order = sorted(self.tensors.values(), key=lambda t: (t.file.name, t.start))
        return [t.name for t in order] + list(self.aliases)

    @cached_property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def untie_output_embedding(self, name: str) -> bool:
        """Serve `name` (e.g. lm_head.weight) from the input embedding, if this checkpoint ties them."""
        if name in self.tensors or not self.tie_word_embeddings:
            return False
        for source in TIED_OUTPUT_EMBEDDINGS.get(name, ()):
            if source in self.tensors:
                self.aliases[name] = source
                return True
        return False


def _refuse_quantized(config_path: Path, config: dict) -> None:
    """Quantized weights (FP8 with weight_scale_inv, GPTQ, AWQ, bitsandbytes, compressed-tensors) are integers or
    low-precision floats beside their scales: averaging them as weights gives garbage, so they are refused."""
    quantization = config.get("quantization_config")
    if quantization is None:
        return
    method = quantization.get("quant_method", "unknown method") if isinstance(quantization, dict) else "unknown method"
    raise BaiError(f"{config_path}: quantized checkpoint ({method}); bai merges only unquantized weights (bf16, fp16, "
                   "fp32): give the model's unquantized release, or dequantize it first")


def _weight_files(path: Path) -> list[Path]:
    index_path = path / INDEX_FILE
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
            shard_names = sorted(set(weight_map.values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise BaiError(f"{index_path}: not a valid index (expected a JSON object with a 'weight_map')") from None
        for shard in shard_names:
            if not (path / shard).is_file():
                raise BaiError(f"{index_path}: names shard {shard!r}, which is missing from {path}")
        return [path / shard for shard in shard_names]
    single = path / SINGLE_WEIGHTS_FILE
    if single.is_file():
        return [single]
    pickles = [name for name in PICKLE_WEIGHTS if (path / name).exists()]
    if pickles:
        raise BaiError(
            f"{path / pickles[0]}: pickle checkpoints are refused (loading one can run arbitrary code); "
            "convert it to safetensors where you trust it, e.g. "
            "`AutoModelForCausalLM.from_pretrained(src).save_pretrained(dst, safe_serialization=True)`"
        )
    raise BaiError(f"{path}: no safetensors weights ({SINGLE_WEIGHTS_FILE} or {INDEX_FILE} with its shards)")


def _check_index_agrees(index_path: Path, tensors: dict[str, TensorInfo]) -> None:
    weight_map = json.loads(index_path.read_text())["weight_map"]
    for name, shard in weight_map.items():
        if name not in tensors:
            raise BaiError(f"{index_path}: lists tensor {name!r}, which is in none of the shards")
        if tensors[name].file.name != shard:
            raise BaiError(f"{index_path}: puts tensor {name!r} in {shard}, but it is in {tensors[name].file.name}")
    unlisted = sorted(set(tensors) - set(weight_map))
    if unlisted:
        raise BaiError(f"{index_path}: does not list tensor(s) {', '.join(map(repr, unlisted[:3]))}")


def check_compatible(checkpoints: dict[str, Checkpoint]) -> list[str]:
    """Check the checkpoints can be merged tensor by tensor; return the tensor names in output order.

    The first checkpoint is the reference. Where some checkpoints store lm_head and others tie it to the input
    embedding (the Qwen2.5-Math / R1-Distill case), the tied ones serve it from their embedding.
    """
    (ref_role, ref), *others = checkpoints.items()
    for role, ckpt in others:
        for key in ARCHITECTURE_KEYS:
            if key in ref.config and key in ckpt.config and ref.config[key] != ckpt.config[key]:
                raise BaiError(
                    f"architecture mismatch: {key} is {ref.config[key]!r} in {ref.path / CONFIG_FILE} "
                    f"but {ckpt.config[key]!r} in {ckpt.path / CONFIG_FILE}"
                )

    all_names = set().union(*(c.tensors for c in checkpoints.values()))
    for name in all_names:
        if not all(name in c.tensors for c in checkpoints.values()):
            for ckpt in checkpoints.values():
                ckpt.untie_output_embedding(name)

    reference_names = ref.tensor_names()
    for role, ckpt in others:
        ref_set, names = set(reference_names), set(ckpt.tensors) | set(ckpt.aliases)
        if names != ref_set:
            only_ref, only_other = sorted(ref_set - names), sorted(names - ref_set)
            parts = []
            if only_ref:
                parts.append(f"only in {ref.path} ({ref_role}): {_first(only_ref)}")
            if only_other:
                parts.append(f"only in {ckpt.path} ({role}): {_first(only_other)}")
            raise BaiError("tensor names differ between checkpoints; " + "; ".join(parts))
        for name in reference_names:
            a, b = ref.info(name), ckpt.info(name)
            if a.shape != b.shape:
                raise BaiError(
                    f"shape mismatch for tensor {name!r}: {list(a.shape)} in {a.file} but {list(b.shape)} in {b.file}"
                )
    return reference_names


def _first(names: list[str], n: int = 3) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(map(repr, names[:n])) + more


def copy_tokenizer_files(source: Path, folder: Path) -> list[str]:
    """Copy the tokenizer, chat template and generation config files of `source` into `folder`, byte for byte."""
    import shutil

    copied = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    for name in copied:
        shutil.copyfile(source / name, folder / name)
    return copied


def has_chat_template(folder: Path) -> bool:
    """Does the checkpoint's tokenizer carry a chat template (its own file, or inside tokenizer_config.json)? Where
    transformers looks, in its order: `ChatTemplate.read`."""
    try:
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        tokenizer_config = {}
    return ChatTemplate.read(folder, tokenizer_config, {}) is not None
