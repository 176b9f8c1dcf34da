"""One trial of a tuning study: merge the three inputs at (w, alpha) into a temporary folder, score the merge on the
dev split with lm-eval (an ordinary cached evaluate stage), and publish the trial's scores under tune/<key>/.

A trial's key is its inputs' fingerprints, its weights, the merge's format and the objective (the dev suite's
definition, lm-eval's version and bai's scoring code); a rerun, or a study resumed after a kill, finds every finished
trial published. The merged weights are not kept: the study's pick is merged again, and published, by the pipeline's
own merge stages."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from bai_core import layout
from bai_core.artifact_stage import ArtifactStage, run_stage
from bai_core.evaluation.config import EvaluateSettings
from bai_core.evaluation.stage import EvalRef, EvaluateStage, ScoredModel, scoring_code_version, suite_definition
from bai_core.fingerprint import cache_dir, fingerprint_folder
from bai_core.io.atomic import AtomicFolder
from bai_core.merge.config import MergeJob, MergeSettings
from bai_core.merge.two_stage import ENGINE_VERSION, merge
from bai_core.sources import CheckpointRef, local_model
from bai_core.storage import StorageConfig, open_store
from bai_core.tune.config import TuneSettings


class TrialResult(BaseModel):
    key: str
    uri: str
    w: float
    alpha: float
    groups: dict[str, dict[str, float]] = {}  # the tensor groups' own weights (merge.groups), when searched
    value: float                        # the objective: what the study maximizes
    overall: float
    scores: dict[str, float]            # task -> its primary metric
    finished_share: float | None
    mean_answer_tokens: float | None
    evaluation: str                     # the dev split's scores in the store (evaluations/<key>/)
    seconds: float
    ran_on: str = ""                    # host:pid of the process that scored it (not part of the key)
    fingerprint: str = ""               # the merge's weights (a pilot merges them again and checks)
    reasoning_tokens: float | None = None  # the length term's reference: the reasoning member's mean on the split


def objective(ref: EvalRef, settings: TuneSettings, reasoning_tokens: float | None = None) -> float:
    """The metric the study maximizes: the overall dev score (or one task's), plus `finished_weight` times the
    share of finished answers, minus `length_weight` times how far the mean answer length is from the reasoning
    member's on the same split, relative to it (|L / L_reasoning - 1|)."""
    score = ref.overall if settings.metric == "overall" else next(r["score"] for r in ref.rows
                                                                  if r["task"] == settings.metric)
    value = score + settings.finished_weight * (ref.finished_share or 0.0)
    if settings.length_weight and reasoning_tokens and ref.mean_answer_tokens is not None:
        value -= settings.length_weight * abs(ref.mean_answer_tokens / reasoning_tokens - 1)
    return value


def trial_groups(merge: MergeSettings, searched: dict) -> dict[str, dict[str, float]]:
    """The tensor groups' weights a trial merges with: the config's merge.groups, and the study's over them."""
    groups = {group: weights.model_dump(exclude_none=True) for group, weights in merge.groups.items()}
    for group, weights in searched.items():
        groups[group] = {**groups.get(group, {}), **weights}
    return groups


@contextmanager
def merged_trial(w: float, alpha: float, refs: dict[str, CheckpointRef], settings: MergeSettings,
                 storage: StorageConfig, groups: dict | None = None) -> Iterator[Path]:
    """The trial's M_bai at (w, alpha) (and its groups' own weights) in a temporary folder, removed on exit: trials'
    weights are not kept."""
    paths = {role: local_model(ref.source, ref.fingerprint, storage) for role, ref in refs.items()}
    (cache_dir() / "tune").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir() / "tune") as temporary:
        output = Path(temporary) / "bai"
        merge(MergeJob(**paths, output=output, instruct_weight=w, alpha=alpha, dtype=settings.dtype,
                       tokenizer_from=settings.tokenizer_from, tokenizers=settings.tokenizers,
                       max_shard_size=settings.max_shard_size, groups=groups or {}))
        yield output


class TrialStage(ArtifactStage[TrialResult]):
    doing = "scoring a trial"

    def __init__(self, w: float, alpha: float, refs: dict[str, CheckpointRef], merge: MergeSettings,
                 tune: TuneSettings, dev: EvaluateSettings, metadata: dict, storage: StorageConfig,
                 reasoning_tokens: float | None = None, groups: dict | None = None):
        self.w, self.alpha, self.refs, self.merge, self.tune = w, alpha, refs, merge, tune
        self.groups = trial_groups(merge, groups or {})
        self.dev, self.metadata, self.storage = dev, metadata, storage
        self.reasoning_tokens = reasoning_tokens  # the length term's reference (part of the objective)
        self.store = open_store(storage)

    def compute_key(self) -> str:
        import lm_eval

        payload = {"inputs": {role: ref.fingerprint for role, ref in sorted(self.refs.items())},
                   "w": self.w, "alpha": self.alpha, "dtype": self.merge.dtype,
                   "tokenizer_from": self.merge.tokenizer_from, "engine": ENGINE_VERSION,
                   "objective": self.objective_key(),
                   "suite": suite_definition(self.dev, self.metadata),
                   "settings": self.dev.model_dump(mode="json", exclude={"models", "device", "deployment",
                                                                        "processes", "data_parallel_size"}),
                   "lm_eval": lm_eval.__version__, "code": scoring_code_version()}
        if self.groups:  # absent without groups: the trials scored before they existed keep their keys
            payload["groups"] = self.groups
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def objective_key(self) -> dict:
        objective = {"metric": self.tune.metric, "finished_weight": self.tune.finished_weight}
        if self.tune.length_weight:  # absent while unused: the trials scored before it existed keep their keys
            objective |= {"length_weight": self.tune.length_weight, "reasoning_tokens": self.reasoning_tokens}
        return objective

    def folder(self) -> str:
        return layout.trial_folder(self.key)

    def recorded(self, marker: dict) -> TrialResult:
        return TrialResult.model_validate(marker["result"])

    def build(self) -> TrialResult:
        started = time.perf_counter()
        with merged_trial(self.w, self.alpha, self.refs, self.merge, self.storage, self.groups) as output:
            model = ScoredModel(name=f"trial w={self.w:.3f} alpha={self.alpha:.3f}", source=str(output),
                                fingerprint=fingerprint_folder(output))
            scored, _ = run_stage(EvaluateStage(model, self.dev, self.storage, self.metadata))
        result = TrialResult(key=self.key, uri=self.store.uri(self.folder()), w=self.w, alpha=self.alpha,
                             groups=self.groups,
                             value=objective(scored, self.tune, self.reasoning_tokens), overall=scored.overall,
                             scores={row["task"]: row["score"] for row in scored.rows},
                             finished_share=scored.finished_share, mean_answer_tokens=scored.mean_answer_tokens,
                             evaluation=scored.uri, seconds=round(time.perf_counter() - started, 2),
                             ran_on=f"{socket.gethostname()}:{os.getpid()}", fingerprint=model.fingerprint,
                             reasoning_tokens=self.reasoning_tokens if self.tune.length_weight else None)
        with AtomicFolder(self.store.local_path(self.folder()), overwrite=True) as staging:
            (staging.path / "trial.json").write_text(result.model_dump_json(indent=2) + "\n")
        self.store.publish(self.folder(), {"cache_key": self.key, "stage": "tune-trial",
                                           "fingerprint": fingerprint_folder(self.store.local_path(self.folder())),
                                           "result": result.model_dump(mode="json")})
        return result
