"""Balanced Actor Initialization as merges: the Python API that `bai merge` wraps.

    stage 1   M_sft = w * instruct + (1 - w) * reasoning
    stage 2   M_bai = alpha * pretrained + (1 - alpha) * M_sft

`merge` runs a job (merge/config.py): `MergeJob`, both stages in one streaming pass (optionally also keeping M_sft),
or `SftMergeJob` and `BaiMergeJob`, one stage at a time, bit-identical to the fused pass. Each output is a complete
Hugging Face checkpoint -- weights, config.json from the tokenizer donor, its tokenizer and chat template, a
generation config that stops where any input would (merge/tokenizers.py), and `bai_merge.json`, a manifest of
inputs (URIs and content fingerprints), weights, dtype, the tokenizer comparison and versions -- that appears only
once complete.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import bai_core
from bai_core.fingerprint import fingerprint_folders
from bai_core.io.atomic import atomic_folders
from bai_core.io.checkpoint import (
    CONFIG_FILE,
    TIED_OUTPUT_EMBEDDINGS,
    Checkpoint,
    check_compatible,
    copy_tokenizer_files,
)
from bai_core.io.safetensors_file import dominant_float_dtype
from bai_core.io.tokenizer_files import TokenizerFacts
from bai_core.merge.config import WeightedMergeJob, WriteOptions
from bai_core.merge.engine import Stage, Term, dtype_code, merge_weights
from bai_core.merge.tokenizers import TokenizerReport, compare_tokenizers, write_generation_config
from bai_core.progress import note

MANIFEST_FILE = "bai_merge.json"
# Bump when the arithmetic or the files written change, so caches keyed on manifests stop matching.
# 2: generation_config.json states the chosen stop ids; tie_word_embeddings by content; manifests hold URIs.
ENGINE_VERSION = 2

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


def merge(job: WeightedMergeJob, progress: Progress | None = None) -> MergeResult:
    """Run a merge job (both stages in one pass, or one stage): its steps' weighted sums, each written output a
    complete checkpoint."""
    terms = lambda pairs: tuple(Term(source, weight) for source, weight in pairs)  # noqa: E731
    stages = [Stage(step.name, terms(step.terms), output=step.output,
                    group_terms=tuple((group, terms(pairs)) for group, pairs in step.group_terms))
              for step in job.steps()]
    return _run(job.inputs(), stages, job.donors(), job, progress)


# The name the Python API has had for `bai merge`'s fused job, and the demo family's recipe uses (its code is hashed
# into the shipped family's id, so it stays): the same call.
merge_two_stages = merge


def _run(
    paths: dict[str, Path], stages: list[Stage], donors: dict[str, str], options: WriteOptions,
    progress: Progress | None
) -> MergeResult:
    """Merge `stages`; `donors` names, per stage, the input whose config and tokenizer files its output keeps."""
    started = time.perf_counter()
    inputs = {role: Checkpoint.open(path) for role, path in paths.items()}
    names = check_compatible(inputs)
    outputs = [stage for stage in stages if stage.output is not None]
    # Checked before anything is read or written: `strict` refuses here, and the final output's report (it depends on
    # every input) is the one warning a run prints.
    facts = {role: TokenizerFacts.read(path) for role, path in paths.items()}  # a tokenizer.json is MBs: once
    reports = {stage.name: compare_tokenizers({role: facts[role] for role in _input_roles(paths, stages, stage)},
                                              donors[stage.name], options.tokenizers) for stage in outputs}
    if (warning := reports[stages[-1].name].warning()) is not None:
        note(warning, warning=True)
    fingerprints = dict(zip(inputs, _fingerprint([c.path for c in inputs.values()], progress)))
    dtype = None if options.dtype == "auto" else dtype_code(options.dtype)
    stores_output_embedding = any(name in TIED_OUTPUT_EMBEDDINGS for name in names)

    with atomic_folders([stage.output for stage in outputs], options.overwrite) as temporaries:
        staged = {stage.name: replace(stage, output=temp) for stage, temp in zip(outputs, temporaries)}
        written = merge_weights(
            inputs,
            [staged.get(stage.name, replace(stage, output=None)) for stage in stages],
            names,
            dtype=dtype,
            max_shard_bytes=int(options.max_shard_size),
            workers=options.workers,
            on_progress=(lambda done, total: progress("merge", done, total)) if progress else None,
        )
        manifests = {}
        for stage in outputs:
            folder, donor = staged[stage.name].output, inputs[donors[stage.name]].path
            out_dtype = dominant_float_dtype(written[stage.name])
            _write_config(donor, folder, out_dtype, untied=stores_output_embedding)
            copy_tokenizer_files(donor, folder)
            write_generation_config(reports[stage.name], donor, folder)
            manifests[stage.name] = _manifest(stages, stage, inputs, fingerprints, options, out_dtype, written,
                                              reports[stage.name])
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


def _needed(stages: list[Stage], stage: Stage) -> list[Stage]:
    """The stages a stage's result is made of (itself and those it reads), in order."""
    needed, wanted = [], {stage.name}
    for earlier in reversed(stages[: stages.index(stage) + 1]):
        if earlier.name in wanted:
            needed.insert(0, earlier)
            wanted |= {t.source for t in earlier.terms}
    return needed


def _input_roles(inputs, stages: list[Stage], stage: Stage) -> list[str]:
    """The inputs a stage's result is made of, in input order."""
    read = {t.source for s in _needed(stages, stage) for t in s.terms}
    return [role for role in inputs if role in read]


def _fingerprint(folders: list[Path], progress: Progress | None) -> list[str]:
    if progress:
        progress("fingerprint", 0, 1)
    prints = fingerprint_folders(folders)
    if progress:
        progress("fingerprint", 1, 1)
    return prints


def _write_config(donor: Path, folder: Path, dtype: str, untied: bool) -> None:
    config = json.loads((donor / CONFIG_FILE).read_text())
    # transformers 5 reads `dtype`; earlier releases read `torch_dtype`. Announce the truth under both names.
    config["torch_dtype"] = dtype
    config["dtype"] = dtype
    # Tied by content, not by the donor's flag: an output that stores lm_head has its own (a merge of the inputs'
    # output embeddings, which differs from the merged input embedding), and a loader that trusts a `true` flag
    # would drop it.
    if untied:
        config["tie_word_embeddings"] = False
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _manifest(stages, stage, inputs, fingerprints, options: WriteOptions, dtype, written,
              tokenizers: TokenizerReport) -> dict:
    """What produced this output: only the stages it depends on, and only their inputs, each by a URI that
    resolves wherever the manifest is read (never a path relative to where the command ran)."""
    needed, roles = _needed(stages, stage), _input_roles(inputs, stages, stage)
    return {
        "kind": "bai-merge",
        "bai_version": bai_core.__version__,
        "engine_version": ENGINE_VERSION,
        "numpy_version": np.__version__,
        "stages": [
            {"name": s.name, "terms": [{"source": t.source, "weight": t.weight} for t in s.terms],
             **({"groups": {group: [{"source": t.source, "weight": t.weight} for t in terms]
                            for group, terms in s.group_terms}} if s.group_terms else {})} for s in needed
        ],
        "formula": "; ".join(
            f"{s.name}{'' if group is None else f'[{group}]'} = "
            + " + ".join(f"{t.weight:g}*{t.source}" for t in terms)
            for s in needed for group, terms in ((None, s.terms), *s.group_terms)
        ),
        "inputs": {role: {"uri": options.input_uris.get(role) or inputs[role].path.resolve().as_uri(),
                          "fingerprint": fingerprints[role]} for role in roles},
        "dtype": dtype,
        "tokenizer_from": tokenizers.donor,
        "tokenizers": tokenizers.manifest(),
        "tensors": len(inputs[roles[0]].tensor_names()),
        "weight_files": [p.name for p in written[stage.name]],
    }
