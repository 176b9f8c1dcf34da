"""The RL actor, published as a sibling of the checkpoint it started from (M_bai, usually).

What TRL's `save_model` writes is the training process's view of the model: float32 weights on a CPU (twice
M_bai's bf16 size), a config with `use_cache: false` (gradient checkpointing turned it off) and transformers' own
version and dtype, and a tokenizer re-saved by transformers (its `tokenizer_config.json` rewritten). A user who
merged in bf16 and prompts the actor with M_bai's template expects M_bai's kind of checkpoint with trained weights.
So the actor keeps:

- the trained weights, rounded to the start's dtype (or `train.save_dtype`);
- the start's config.json, with only the dtype changed where `save_dtype` changes it;
- the start's tokenizer, chat template and generation config, byte for byte.

What differs from the start is written into the actor's `bai_train.json` (`differs_from_start`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bai_core.io.checkpoint import CONFIG_FILE, TOKENIZER_FILES, copy_tokenizer_files
from bai_core.io.safetensors_file import dominant_float_dtype, read_header


def publish_as_sibling(start: Path, actor: Path, save_dtype: str = "auto") -> dict:
    """Rewrite the saved actor in `actor` as a sibling of `start`; return what differs from the start."""
    start_files = sorted(start.glob("*.safetensors"))
    start_dtype = dominant_float_dtype(start_files) if start_files else "float32"
    dtype = start_dtype if save_dtype == "auto" else save_dtype
    saved_dtype = _cast_weights(actor, dtype)

    saved_config = json.loads((actor / CONFIG_FILE).read_text())
    config = json.loads((start / CONFIG_FILE).read_text())
    ignored = {"torch_dtype", "dtype", "transformers_version", "_name_or_path"}
    dropped = {key: {"start": config.get(key), "trl_saved": saved_config.get(key)}
               for key in sorted((set(config) | set(saved_config)) - ignored)
               if config.get(key) != saved_config.get(key)}
    if dtype == start_dtype:  # the start's file as it is
        shutil.copyfile(start / CONFIG_FILE, actor / CONFIG_FILE)
    else:  # announced under both names, as the merge does (transformers 5 reads `dtype`, earlier `torch_dtype`)
        (actor / CONFIG_FILE).write_text(json.dumps({**config, "torch_dtype": dtype, "dtype": dtype}, indent=2) + "\n")

    for name in TOKENIZER_FILES:  # what transformers re-saved goes; the start's files come back as they were
        (actor / name).unlink(missing_ok=True)
    copied = copy_tokenizer_files(start, actor)
    return {"weights": "trained", "dtype": {"start": start_dtype, "actor": dtype, "trained_in": saved_dtype},
            "config": "the start's" + (f", dtype {dtype}" if dtype != start_dtype else ""),
            "trl_saved_config_not_kept": dropped, "tokenizer_files": {"copied_from_start": copied}}


def _cast_weights(folder: Path, dtype: str) -> str:
    """Round every floating-point tensor of the folder's weight files to `dtype`, file by file (one shard in memory
    at a time); return the dtype they were saved in."""
    import torch
    from safetensors.torch import load_file, save_file

    files = sorted(folder.glob("*.safetensors"))
    saved = dominant_float_dtype(files) if files else dtype
    if saved == dtype:
        return saved
    target = getattr(torch, dtype)
    for file in files:
        tensors = load_file(str(file))
        cast = {name: t.to(target) if t.is_floating_point() else t for name, t in tensors.items()}
        del tensors
        temporary = file.with_name(file.name + ".part")
        save_file(cast, str(temporary), metadata={"format": "pt"})
        temporary.replace(file)
    index = folder / "model.safetensors.index.json"
    if index.is_file():  # the index states the total size, which the cast changed
        data = json.loads(index.read_text())
        data.setdefault("metadata", {})["total_size"] = sum(
            info.nbytes for f in files for info in read_header(f)[0].values())
        index.write_text(json.dumps(data, indent=2) + "\n")
    return saved
