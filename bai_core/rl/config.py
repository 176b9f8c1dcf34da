"""The train stage's configuration (the pipeline's `train:` section): the actor's start, the reward terms, the
prompts, TRL's settings and the detectors' thresholds."""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bai_core import plugins
from bai_core.rl.generation import TRL_NAMES as VLLM_TRL_NAMES
from bai_core.rl.generation import GenerationSettings
from bai_core.rl.launch.config import LaunchSettings
from bai_core.settings import Strict
from bai_core.source_ref import could_be_source
from bai_core.stability.detectors import DetectorThresholds

INIT_ROLES = ("bai", "sft", "pretrained", "instruct", "reasoning")  # train.init names besides any source
# train.algorithm -> TRL's config and trainer (module, class): the one table of the RL algorithms bai drives.
ALGORITHMS = {"grpo": (("trl.trainer.grpo_config", "GRPOConfig"), ("trl.trainer.grpo_trainer", "GRPOTrainer")),
              "rloo": (("trl.trainer.rloo_config", "RLOOConfig"), ("trl.trainer.rloo_trainer", "RLOOTrainer"))}
Detector = Literal["collapse", "hockey_stick", "entropy"]
BUILT_IN_VERIFIERS = ("math",)  # bai_core/rl/rewards.py; plug-ins add theirs


class RewardComponent(Strict):
    """One term of the RL reward: a learned reward model (any sequence-classification checkpoint, scored with its
    own tokenizer) or a verifiable reward, times its weight."""

    model: str | None = Field(None, description="Reward model source: demo://demo/reward, a folder, s3://, hub id.")
    verifiable: str | None = Field(
        None, description="math: 1 when math-verify finds the completion's answer (\\boxed{} first) equal to the "
                          "prompt's `answer` (GSM8K, MATH, LaTeX); a plug-in's verifier, e.g. arithmetic: 1 for the "
                          "demo task's right final number.")
    weight: float = 1.0
    score_truncated: bool = Field(
        False, description="verifiable: also score a completion that ran into max_completion_length before its stop "
                           "token (default: it earns 0, so RL is never paid for an answer it did not finish). A think "
                           "block that never closed earns 0 either way.")

    @model_validator(mode="after")
    def _one_kind(self):
        known = [*BUILT_IN_VERIFIERS, *plugins.verifiers()]
        if self.verifiable is not None and self.verifiable not in known:
            raise ValueError(f"verifiable: no verifier {self.verifiable!r} (known: {', '.join(known)})")
        if (self.model is None) == (self.verifiable is None):
            raise ValueError("give exactly one of `model` (a reward model) or `verifiable` (e.g. arithmetic)")
        if self.score_truncated and self.model is not None:
            raise ValueError("score_truncated applies to verifiable rewards; a reward model scores every completion")
        return self

    @property
    def kind(self) -> str:
        return f"verifiable-{self.verifiable}" if self.verifiable else "reward-model"


class PromptSettings(Strict):
    """The RL prompts: where they come from, and which columns hold the prompt and its reference answer. In a config,
    a plain string is the source alone."""

    source: str = Field(description="demo://<size>/rl[@seed], or a JSONL / parquet file, s3:// object or hub dataset "
                                    "(org/name[@revision][:split]).")
    subset: str | None = Field(None, description="A hub dataset's configuration (load_dataset's name), e.g. main "
                                                 "for openai/gsm8k.")
    prompt_column: str = Field("prompt", description="The column holding the prompt: text, or chat messages.")
    answer_column: str = Field("answer", description="The column holding the reference answer (verifiable "
                                                     "rewards read it).")
    chat: bool = Field(False, description="Text prompts become one user message, so the actor's chat template "
                                          "applies (a reasoning model's <think> opening included).")
    instruction: str | None = Field(None, description="Appended to each prompt's text on a new line, e.g. "
                                                      "'Please reason step by step, and put your final answer "
                                                      "within \\boxed{}.'")


class TrainSettings(Strict):
    """RLHF from the merged actor with TRL (GRPO or RLOO), watched by the stability detectors."""

    init: str = Field("bai", description="Actor (and reference) start: bai, sft, pretrained, instruct, reasoning, "
                                         "or any source (folder, s3://, hub id, demo://).")
    algorithm: Literal[tuple(ALGORITHMS)] = "grpo"
    reward: list[RewardComponent] = Field(min_length=1, description="Weighted reward terms.")
    # `| str` so that the JSON schema (Prefect checks deployment parameters against it) admits the shorthand; the
    # validator below makes every value a PromptSettings.
    prompts: PromptSettings | str = Field(description="The RL prompts: a source (demo://<size>/rl[@seed], a JSONL / "
                                                "parquet file, s3:// object or hub dataset), or {source, subset, "
                                                "prompt_column, answer_column, chat, instruction}.")
    steps: int = Field(40, gt=0, description="Optimizer steps.")
    batch_size: int = Field(16, gt=0, description="Completions per step (prompts per step x generations).")
    generations: int = Field(4, gt=0, description="Completions per prompt (a GRPO / RLOO group).")
    max_completion_length: int = Field(64, gt=0, description="Tokens a completion may have; longer ones are cut.")
    temperature: float = Field(1.0, gt=0)
    learning_rate: float = Field(1e-5, gt=0)
    kl_coef: float = Field(0.04, ge=0, description="KL penalty to the reference policy (TRL's beta).")
    seed: int = Field(0, ge=0)
    save_every: int = Field(10, gt=0, description="Checkpoint (weights, optimizer, RNG, step) every N steps.")
    length_bucket: int = Field(100, gt=0, description="Token width of the per-length reward buckets.")
    detect_every: int = Field(5, gt=0, description="Run the detectors on the curves so far every N steps.")
    detectors: DetectorThresholds = DetectorThresholds()
    abort_on: list[Detector] = Field([], description="Stop the run (Failed) when one of these fires.")
    save_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="The published actor's dtype; auto: the start's (M_bai's), whatever training ran in.")
    trl: dict = Field({}, description="Any other GRPOConfig / RLOOConfig argument, passed through to TRL.")
    deployment: str | None = Field(None, description="Run the stage as this deployment (e.g. bai-train/gpu) on "
                                                     "its work pool; unset: train in this process.")
    launch: LaunchSettings = Field(LaunchSettings(), description="The ranks to train on: processes per machine, "
                                                                 "machines, strategy (default: this process alone).")
    generation: GenerationSettings = Field(GenerationSettings(), description="Who generates the completions: "
                                                                             "transformers (default) or vLLM.")

    @field_validator("abort_on", mode="before")
    @classmethod
    def _either_spelling(cls, value):
        """`hockey-stick`, as `bai diagnose --fail-on` spells it, means `hockey_stick` here too."""
        return [name.replace("-", "_") if isinstance(name, str) else name for name in value] \
            if isinstance(value, list) else value

    @field_validator("prompts", mode="after")
    @classmethod
    def _source_alone(cls, value: PromptSettings | str) -> PromptSettings:
        return PromptSettings(source=value) if isinstance(value, str) else value

    @property
    def reward_names(self) -> list[str]:
        """Each reward term's name in metrics (reward/<name>/mean): its kind, numbered when a kind repeats."""
        kinds = [c.kind for c in self.reward]
        return [kind if kinds.count(kind) == 1 else f"{kind}-{kinds[:i + 1].count(kind)}"
                for i, kind in enumerate(kinds)]

    @model_validator(mode="after")
    def _consistent(self):
        _check_init(self.init)
        if self.generations < 2:  # GRPO's advantage is relative to the group, RLOO's baseline the others in it
            raise ValueError(f"{self.algorithm.upper()} needs at least 2 generations per prompt (its advantage is "
                             "relative to the other completions of the same prompt)")
        if self.batch_size % self.generations:
            raise ValueError(f"batch_size {self.batch_size} is not a whole number of groups of {self.generations} "
                             "generations (TRL splits a batch into whole groups)")
        if self.batch_size % self.launch.world_size:
            raise ValueError(f"batch_size {self.batch_size} does not split evenly over {self.launch.world_size} "
                             "ranks (each generates an equal share of the step's completions)")
        owned = {"ddp_timeout", "max_steps", "per_device_train_batch_size", "num_generations", "max_completion_length",
                 "temperature", "learning_rate", "beta", "seed", "save_steps", "output_dir", "reward_weights"}
        if clash := sorted(owned & set(self.trl)):
            raise ValueError(f"trl.{clash[0]} is set by bai's own train settings; set those instead")
        if clash := sorted(set(VLLM_TRL_NAMES) & set(self.trl)):
            raise ValueError(f"trl.{clash[0]}: vLLM is set in train.generation (backend: vllm, mode, server_url, "
                             "gpu_memory_utilization, tensor_parallel_size)")
        if self.trl:
            _check_trl_arguments(self.algorithm, self.trl)
        return self


def _check_init(init: str) -> None:
    if init in INIT_ROLES or could_be_source(init):
        return
    close = difflib.get_close_matches(init, INIT_ROLES, n=1)
    raise ValueError(f"{init!r} names nothing" + (f" (did you mean {close[0]!r}?)" if close else "")
                     + f"; use one of {', '.join(INIT_ROLES)}, or a folder, s3://, hub id or demo:// source")


def _check_trl_arguments(algorithm: str, arguments: dict) -> None:
    """Names TRL's config does not have are refused here, with the closest ones, instead of deep inside TRL.
    (Imports TRL's config module, a few seconds, only when `trl:` arguments are given.)"""
    import dataclasses

    TRLConfig = trl_class(algorithm, "config")  # a class
    known = [f.name for f in dataclasses.fields(TRLConfig)]
    for name in arguments:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=2)
            raise ValueError(f"trl.{name}: {TRLConfig.__name__} has no such argument"
                             + (f" (closest: {', '.join(close)})" if close else ""))


def trl_class(algorithm: str, which: str):
    """TRL's config ("config") or trainer ("trainer") class for `train.algorithm` (imports TRL)."""
    import importlib

    module, name = ALGORITHMS[algorithm][0 if which == "config" else 1]
    return getattr(importlib.import_module(module), name)
