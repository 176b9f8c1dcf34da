"""Balanced Actor Initialization as merges: the Python API that `bai merge` wraps.

    stage 1   M_sft = w * instruct + (1 - w) * reasoning
    stage 2   M_bai = alpha * pretrained + (1 - alpha) * M_sft

`merge_two_stages` runs both stages in one streaming pass (optionally also keeping M_sft); `merge_sft` and
`merge_bai` run them one at a time, bit-identical to the fused pass. Each output is a complete Hugging Face
checkpoint -- weights, config.json from the tokenizer donor, tokenizer and chat template, and `bai_merge.json`, a
manifest of inputs (with content fingerprints), weights, dtype and versions -- that appears only once complete.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import bai_core
from bai_core.fingerprint import fingerprint_folders
from bai_core.io.atomic import atomic_folders
from bai_core.io.checkpoint import CONFIG_FILE, TOKENIZER_FILES, Checkpoint, check_compatible
from bai_core.io.safetensors_file import TORCH_NAMES, read_header
from bai_core.merge.config import BaiMergeJob, MergeJob, SftMergeJob, WriteOptions
from bai_core.merge.engine import Stage, Term, dtype_code, merge_weights

MANIFEST_FILE = "bai_merge.json"
# Bump when the arithmetic or file layout changes, so caches keyed on manifests stop matching.
ENGINE_VERSION = 1

# (phase, done, total): phases are "fingerprint" and "merge", counted in bytes.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MergeResult:
    output: Path
    stage1_output: Path | None
    manifest: dict
    seconds: float
    bytes_read: int
    bytes_written: int


def merge_two_stages(config: MergeJob, progress: Progress | None = None) -> MergeResult:
    """Both stages in one pass; writes `config.output` (and `config.stage1_output` if set)."""
    w, alpha = config.instruct_weight, config.alpha
    sft = Stage("sft", (Term("instruct", w), Term("reasoning", 1 - w)), output=config.stage1_output)
    bai = Stage("bai", (Term("pretrained", alpha), Term("sft", 1 - alpha)), output=config.output)
    paths = {"pretrained": config.pretrained, "instruct": config.instruct, "reasoning": config.reasoning}
    return _run(paths, [sft, bai], config.tokenizer_from, config, progress)


def merge_sft(config: SftMergeJob, progress: Progress | None = None) -> MergeResult:
    w = config.instruct_weight
    sft = Stage("sft", (Term("instruct", w), Term("reasoning", 1 - w)), output=config.output)
    paths = {"instruct": config.instruct, "reasoning": config.reasoning}
    return _run(paths, [sft], config.tokenizer_from, config, progress)


def merge_bai(config: BaiMergeJob, progress: Progress | None = None) -> MergeResult:
    alpha = config.alpha
    bai = Stage("bai", (Term("pretrained", alpha), Term("sft", 1 - alpha)), output=config.output)
    paths = {"pretrained": config.pretrained, "sft": config.sft}
    return _run(paths, [bai], config.tokenizer_from, config, progress)


def _run(
    paths: dict[str, Path], stages: list[Stage], donor: str, options: WriteOptions, progress: Progress | None
) -> MergeResult:
    started = time.perf_counter()
    inputs = {role: Checkpoint.open(path) for role, path in paths.items()}
    names = check_compatible(inputs)
    fingerprints = dict(zip(inputs, _fingerprint([c.path for c in inputs.values()], progress)))
    dtype = None if options.dtype == "auto" else dtype_code(options.dtype)
    outputs = [stage for stage in stages if stage.output is not None]

    with atomic_folders([stage.output for stage in outputs], options.overwrite) as temporaries:
        staged = {stage.name: Stage(stage.name, stage.terms, temp) for stage, temp in zip(outputs, temporaries)}
        written = merge_weights(
            inputs,
            [staged.get(stage.name, Stage(stage.name, stage.terms)) for stage in stages],
            names,
            dtype=dtype,
            max_shard_bytes=int(options.max_shard_size),
            workers=options.workers,
            on_progress=(lambda done, total: progress("merge", done, total)) if progress else None,
        )
        manifests = {}
        for stage in outputs:
            folder = staged[stage.name].output
            out_dtype = _dominant_float_dtype(written[stage.name])
            _write_config(inputs[donor].path, folder, out_dtype, untied=_untied(inputs))
            _copy_tokenizer(inputs[donor].path, folder)
            manifests[stage.name] = _manifest(stages, stage, inputs, fingerprints, donor, out_dtype, written)
            (folder / MANIFEST_FILE).write_text(json.dumps(manifests[stage.name], indent=2) + "\n")

    final = stages[-1]
    return MergeResult(
        output=final.output,
        stage1_output=stages[0].output if len(stages) > 1 else None,
        manifest=manifests[final.name],
        seconds=time.perf_counter() - started,
        bytes_read=sum(ckpt.info(name).nbytes for ckpt in inputs.values() for name in names),
        bytes_written=sum(p.stat().st_size for stage in outputs for p in stage.output.glob("*.safetensors")),
    )


def _fingerprint(folders: list[Path], progress: Progress | None) -> list[str]:
    if progress:
        progress("fingerprint", 0, 1)
    prints = fingerprint_folders(folders)
    if progress:
        progress("fingerprint", 1, 1)
    return prints


def _untied(inputs: dict[str, Checkpoint]) -> bool:
    return any(ckpt.aliases for ckpt in inputs.values())


def _dominant_float_dtype(files: list[Path]) -> str:
    """The float dtype holding most bytes in the written files (what config.json should announce)."""
    weight = Counter()
    for file in files:
        for info in read_header(file)[0].values():
            if info.is_float:
                weight[info.dtype] += info.nbytes
    code = weight.most_common(1)[0][0] if weight else "F32"
    return TORCH_NAMES[code]


def _write_config(donor: Path, folder: Path, dtype: str, untied: bool) -> None:
    config = json.loads((donor / CONFIG_FILE).read_text())
    # transformers 5 reads `dtype`; earlier releases read `torch_dtype`. Announce the truth under both names.
    config["torch_dtype"] = dtype
    config["dtype"] = dtype
    if untied:  # some inputs stored lm_head separately, so the merge has its own lm_head
        config["tie_word_embeddings"] = False
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _copy_tokenizer(donor: Path, folder: Path) -> None:
    for name in TOKENIZER_FILES:
        if (donor / name).is_file():
            shutil.copyfile(donor / name, folder / name)


def _manifest(stages, stage, inputs, fingerprints, donor, dtype, written) -> dict:
    """What produced this output: only the stages it depends on, and only their inputs."""
    needed, wanted = [], {stage.name}
    for s in reversed(stages[: stages.index(stage) + 1]):
        if s.name in wanted:
            needed.insert(0, s)
            wanted |= {t.source for t in s.terms}
    roles = [role for role in inputs if role in wanted]
    return {
        "kind": "bai-merge",
        "bai_version": bai_core.__version__,
        "engine_version": ENGINE_VERSION,
        "numpy_version": np.__version__,
        "stages": [
            {"name": s.name, "terms": [{"source": t.source, "weight": t.weight} for t in s.terms]} for s in needed
        ],
        "formula": "; ".join(
            f"{s.name} = " + " + ".join(f"{t.weight:g}*{t.source}" for t in s.terms) for s in needed
        ),
        "inputs": {role: {"path": str(inputs[role].path), "fingerprint": fingerprints[role]} for role in roles},
        "dtype": dtype,
        "tokenizer_from": donor,
        "tensors": len(inputs[roles[0]].tensor_names()),
        "weight_files": [p.name for p in written[stage.name]],
    }
