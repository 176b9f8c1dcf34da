"""The pipeline's plan, as data: which stages a config runs and in what order, which are skipped and why, where the
stages that can leave this process run (here, a work pool, N machines), where the RL actor starts, and what is scored
from where in the store.

`flows/pipeline.py` composes Prefect tasks from a plan and decides none of this itself; `bai plan`-like views, tests
and other orchestrators can read the same plan without Prefect.

    source builds     one stage per build a plug-in's sources need (the demo family: demo-family-<size>)
    fetch-<role>      pretrained, instruct, reasoning
    prepare-train     train inputs checked before anything is merged          (skipped without `train`)
    prepare-evaluate  suite checked, its metadata resolved                    (skipped without `evaluate`)
    prepare-tune      the dev suite checked                                   (only with `tune`)
    trial-<n>         one per trial: (w, alpha) merged and scored on the dev split  (only with `tune`), then, with
                      tune.pilots, a trial-<n>-pilot-<k> row per RL pilot rung it reached
    merge-stage1      M_sft = w*instruct + (1-w)*reasoning (the study's best w and alpha with `tune`)
    merge-stage2      M_bai = alpha*pretrained + (1-alpha)*M_sft
    train             RL from `train.init` (M_bai by default)                 (skipped without `train`)
    evaluate-<model>  one per scored model                                    (skipped without `evaluate`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from bai_core import layout, plugins
from bai_core.config import ROLES, PipelineConfig
from bai_core.evaluation.stage import ScoredModel
from bai_core.rl.launch.config import this_machine
from bai_core.rl.stage import ActorInit
from bai_core.sources import CheckpointRef

MERGED = ("sft", "bai")  # the merges of this run, by the names train.init and evaluate.models give them
NOT_CONFIGURED = {"train": "not configured (config.train)", "evaluate": "not configured (config.evaluate)"}


@dataclass(frozen=True)
class Placement:
    """Where a stage runs: in this process, as a run of `deployment` on its work pool, or as one run per machine
    of `deployment` (`machines` of them, meeting through the store)."""

    where: Literal["here", "pool", "machines"]
    deployment: str | None = None
    machines: int = 1

    @classmethod
    def of(cls, deployment: str | None, machines: int = 1) -> Placement:
        if deployment is None:
            return cls("here", machines=machines)
        return cls("machines" if machines > 1 else "pool", deployment, machines)


@dataclass(frozen=True)
class Plan:
    builds: tuple[plugins.SourceBuild, ...]
    stages: tuple[str, ...]              # the stage table's rows, in order
    skipped: dict[str, str] = field(default_factory=dict)  # stage -> why it does not run
    train: Placement | None = None
    evaluate: Placement | None = None
    scored: tuple[str, ...] = ()         # the models the evaluate stages score, in order

    def runs(self, stage: str) -> bool:
        return stage not in self.skipped


def plan_pipeline(config: PipelineConfig) -> Plan:
    """The plan of `config` on this machine (a machine that joins a multi-machine train stage does not score)."""
    builds = tuple(source_builds(config))
    scored = tuple(config.scored_models)
    evaluate_stages = [f"evaluate-{name}" for name in scored] or ["evaluate"]
    tune_stages = ("prepare-tune", *(f"trial-{n}" for n in range(config.tune.trials))) if config.tune else ()
    stages = (*(b.stage for b in builds), *(f"fetch-{role}" for role in ROLES), "prepare-train", "prepare-evaluate",
              *tune_stages, "merge-stage1", "merge-stage2", "train", *evaluate_stages)
    skipped = {}
    if config.train is None:
        skipped |= {"prepare-train": NOT_CONFIGURED["train"], "train": NOT_CONFIGURED["train"]}
    if config.evaluate is None:
        skipped |= {"prepare-evaluate": NOT_CONFIGURED["evaluate"], "evaluate": NOT_CONFIGURED["evaluate"]}
    elif joined := joining_machine(config):
        skipped["evaluate"] = (f"machine {joined} of {config.train.launch.machines} joined the train stage; "
                               "machine 0 scores")
    return Plan(builds=builds, stages=stages, skipped=skipped,
                train=Placement.of(config.train.deployment, config.train.launch.machines) if config.train else None,
                evaluate=Placement.of(config.evaluate.deployment) if config.evaluate else None,
                scored=scored)


def checkpoint_sources(config: PipelineConfig) -> list[str]:
    """Every checkpoint source the config names (train.init may name a role instead: bai, sft, ...)."""
    sources = [config.models.pretrained, config.models.instruct, config.models.reasoning]
    if config.train is not None:
        sources += [config.train.init] + [c.model for c in config.train.reward if c.model]
    return sources


def source_builds(config: PipelineConfig) -> list[plugins.SourceBuild]:
    """What the config's sources need built before they can be fetched, each once, in a stable order."""
    builds = {}
    for source in checkpoint_sources(config):
        if (scheme := plugins.scheme_of(source)) in plugins.checkpoint_schemes():
            if (build := plugins.checkpoint_scheme(scheme).builds(source)) is not None:
                builds[(build.stage, json.dumps(build.arguments, sort_keys=True))] = build
    return [builds[key] for key in sorted(builds)]


def joining_machine(config: PipelineConfig) -> int:
    """This machine's rank when it is one of several training in this process (`bai run` on each Slurm node), else
    0. The pool's machines are flow runs of their own, so there the pipeline is machine 0."""
    if config.train is None or config.train.launch.machines == 1 or config.train.deployment:
        return 0
    return this_machine(config.train.launch)


def actor_init(init: str, prepared: dict | None, merges: dict[str, dict]) -> ActorInit:
    """Where the actor starts: what prepare-train resolved (a fetched checkpoint), or, for `init` bai or sft, that
    merge of this run (its artifact in the store)."""
    if prepared is not None:
        return ActorInit.model_validate(prepared)
    merged = merges[init]
    return ActorInit(name=init, source=merged["uri"], fingerprint=merged["fingerprint"], merge_key=merged["key"],
                     merge_stage=merged["stage"])


def scored_model(name: str, refs: dict[str, dict], merges: dict[str, dict], actor: dict | None) -> ScoredModel:
    """What the evaluate stage scores under `name`: a fetched member (by its resolvable URI: a hub id at its
    commit), a merge of this run, or its RL actor (each of those two from the store)."""
    if name in refs:
        ref = CheckpointRef.model_validate(refs[name])
        return ScoredModel(name=name, source=ref.uri, fingerprint=ref.fingerprint)
    if name in merges:
        merged = merges[name]
        return ScoredModel(name=name, source=merged["uri"], fingerprint=merged["fingerprint"],
                           store_key=layout.merge_folder(merged["stage"], merged["key"]))
    return ScoredModel(name=name, source=actor["actor"], fingerprint=actor["fingerprint"],
                       store_key=layout.actor_folder(actor["key"]))
