"""Typed configuration, validated at the edge. The CLI, the Python API and (later) the flows share these models."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, field_validator, model_validator

from bai_core.errors import BaiError
from bai_core.rl.detectors import DetectorThresholds

OutputDtype = Literal["auto", "float32", "bfloat16", "float16"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WriteOptions(_Strict):
    """How merged checkpoints are written."""

    dtype: OutputDtype = Field(
        "auto", description="Output dtype of floating-point tensors; auto keeps the inputs' (which must agree)."
    )
    max_shard_size: ByteSize = Field(
        ByteSize(5 * 10**9), description="Largest weight file written, e.g. 5GB or 500MB (a larger tensor stands alone)."
    )
    overwrite: bool = Field(False, description="Replace an existing output folder.")
    workers: int | None = Field(None, ge=1, description="Threads for reading, arithmetic and writing (default: cores).")


class Stage1Config(WriteOptions):
    """Stage 1 alone: M_sft = w * instruct + (1 - w) * reasoning."""

    instruct: Path
    reasoning: Path
    output: Path
    instruct_weight: float = Field(0.5, ge=0, le=1, description="w, the instruct model's weight.")
    tokenizer_from: Literal["reasoning", "instruct"] = "reasoning"

    @model_validator(mode="after")
    def _distinct_paths(self):
        _check_output_not_input(self.output, [self.instruct, self.reasoning])
        return self


class Stage2Config(WriteOptions):
    """Stage 2 alone: M_bai = alpha * pretrained + (1 - alpha) * M_sft."""

    pretrained: Path
    sft: Path
    output: Path
    alpha: float = Field(0.5, ge=0, le=1, description="alpha, the pretrained model's weight.")
    tokenizer_from: Literal["sft", "pretrained"] = "sft"

    @model_validator(mode="after")
    def _distinct_paths(self):
        _check_output_not_input(self.output, [self.pretrained, self.sft])
        return self


class MergeConfig(WriteOptions):
    """Both stages in one streaming pass; `stage1_output` also keeps M_sft as a checkpoint."""

    pretrained: Path
    instruct: Path
    reasoning: Path
    output: Path
    instruct_weight: float = Field(0.5, ge=0, le=1, description="w, the instruct model's weight in stage 1.")
    alpha: float = Field(0.5, ge=0, le=1, description="alpha, the pretrained model's weight in stage 2.")
    stage1_output: Path | None = Field(None, description="Also write M_sft here.")
    tokenizer_from: Literal["reasoning", "instruct", "pretrained"] = Field(
        "reasoning", description="Donor of config.json, tokenizer, chat template and generation config."
    )

    @model_validator(mode="after")
    def _distinct_paths(self):
        inputs = [self.pretrained, self.instruct, self.reasoning]
        _check_output_not_input(self.output, inputs)
        if self.stage1_output is not None:
            _check_output_not_input(self.stage1_output, inputs + [self.output])
        return self


def _check_output_not_input(output: Path, others: list[Path]) -> None:
    for other in others:
        if output.resolve() == other.resolve():
            raise ValueError(f"output folder {output} is also an input or another output")


def validated(model: type[BaseModel], **values) -> BaseModel:
    """Build a config, turning pydantic's multi-line report into one BaiError line that names the key.

    An unknown key is reported before anything else: `instuct:` is a typo of `instruct`, and saying so beats
    reporting the `instruct` it left missing."""
    try:
        return model(**values)
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda error: error["type"] != "extra_forbidden")
        first = errors[0]
        key = ".".join(str(part) for part in first["loc"]) or model.__name__
        if first["type"] == "extra_forbidden":
            known = _field_names(model, first["loc"][:-1])
            close = difflib.get_close_matches(str(first["loc"][-1]), known, n=1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else
                                       f" (known: {', '.join(known)})" if known else "")
        else:
            message = first["msg"].removeprefix("Value error, ")
        raise BaiError(f"invalid {key}: {message}" if first["loc"] else f"invalid config: {message}") from None


def _field_names(model: type[BaseModel], path: tuple) -> list[str]:
    """The keys a (nested) model accepts at `path`, for suggestions."""
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        nested = [t for t in (field.annotation, *typing.get_args(field.annotation))
                  if isinstance(t, type) and issubclass(t, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)


# ----------------------------------------------------------------------------------------------------------------
# The pipeline: one model, loaded from YAML by `bai run`, passed as the flow's parameter, embedded in prefect.yaml.


ROLES = ("pretrained", "instruct", "reasoning")  # the three checkpoints, in the order the pipeline fetches them


class ModelsConfig(_Strict):
    """The three checkpoints: local folders, s3://bucket/prefix, hub ids org/name[@revision], or demo://..."""

    pretrained: str
    instruct: str
    reasoning: str


class MergeSettings(_Strict):
    """Both merge stages' parameters (stage 1 and stage 2 run as separate cached tasks)."""

    instruct_weight: float = Field(0.5, ge=0, le=1, description="w: M_sft = w*instruct + (1-w)*reasoning.")
    alpha: float = Field(0.5, ge=0, le=1, description="alpha: M_bai = alpha*pretrained + (1-alpha)*M_sft.")
    dtype: OutputDtype = "auto"
    tokenizer_from: Literal["reasoning", "instruct", "pretrained"] = "reasoning"
    max_shard_size: ByteSize = ByteSize(5 * 10**9)


class StorageConfig(_Strict):
    """Where artifacts and Prefect's cached results live. Credentials are never part of the config."""

    uri: str = Field("bai-artifacts", description="A local folder (default ./bai-artifacts), file:// or s3://b/p.")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; default $AWS_ENDPOINT_URL or AWS.")
    credentials_block: str | None = Field(
        None,
        description="Name of a Prefect Secret block holding {aws_access_key_id, aws_secret_access_key}; "
        "default: the AWS_* environment variables.",
    )


INIT_ROLES = ("bai", "sft", "pretrained", "instruct", "reasoning")  # train.init names besides any source
Detector = Literal["collapse", "hockey_stick"]


class RewardComponent(_Strict):
    """One term of the RL reward: a learned reward model (any sequence-classification checkpoint, scored with its
    own tokenizer) or a verifiable reward, times its weight."""

    model: str | None = Field(None, description="Reward model source: demo://demo/reward, a folder, s3://, hub id.")
    verifiable: Literal["arithmetic", "math"] | None = Field(
        None, description="arithmetic: 1 for the demo task's right final number; math: 1 when math-verify finds the "
                          "completion's answer (\\boxed{} first) equal to the prompt's `answer` (GSM8K, MATH, LaTeX).")
    weight: float = 1.0

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.model is None) == (self.verifiable is None):
            raise ValueError("give exactly one of `model` (a reward model) or `verifiable` (e.g. arithmetic)")
        return self

    @property
    def kind(self) -> str:
        return f"verifiable-{self.verifiable}" if self.verifiable else "reward-model"


class PromptSettings(_Strict):
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


class TrainSettings(_Strict):
    """RLHF from the merged actor with TRL (GRPO or RLOO), watched by the stability detectors."""

    init: str = Field("bai", description="Actor (and reference) start: bai, sft, pretrained, instruct, reasoning, "
                                         "or any source (folder, s3://, hub id, demo://).")
    algorithm: Literal["grpo", "rloo"] = "grpo"
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
    trl: dict = Field({}, description="Any other GRPOConfig / RLOOConfig argument, passed through to TRL.")
    deployment: str | None = Field(None, description="Run the stage as this deployment (e.g. bai-train/gpu) on "
                                                     "its work pool; unset: train in this process.")

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
        owned = {"max_steps", "per_device_train_batch_size", "num_generations", "max_completion_length",
                 "temperature", "learning_rate", "beta", "seed", "save_steps", "output_dir", "reward_weights"}
        if clash := sorted(owned & set(self.trl)):
            raise ValueError(f"trl.{clash[0]} is set by bai's own train settings; set those instead")
        if self.trl:
            _check_trl_arguments(self.algorithm, self.trl)
        return self


def _check_init(init: str) -> None:
    if init in INIT_ROLES or init.startswith(("demo://", "s3://", "hf://", "/", "./", "../", "~", "file://")):
        return
    if "/" in init or Path(init).expanduser().exists():
        return  # a hub id org/name, or a local folder
    close = difflib.get_close_matches(init, INIT_ROLES, n=1)
    raise ValueError(f"{init!r} names nothing" + (f" (did you mean {close[0]!r}?)" if close else "")
                     + f"; use one of {', '.join(INIT_ROLES)}, or a folder, s3://, hub id or demo:// source")


def _check_trl_arguments(algorithm: str, arguments: dict) -> None:
    """Names TRL's config does not have are refused here, with the closest ones, instead of deep inside TRL.
    (Imports TRL's config module, a few seconds, only when `trl:` arguments are given.)"""
    import dataclasses

    if algorithm == "grpo":
        from trl.trainer.grpo_config import GRPOConfig as TRLConfig
    else:
        from trl.trainer.rloo_config import RLOOConfig as TRLConfig
    known = [f.name for f in dataclasses.fields(TRLConfig)]
    for name in arguments:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=2)
            raise ValueError(f"trl.{name}: {TRLConfig.__name__} has no such argument"
                             + (f" (closest: {', '.join(close)})" if close else ""))


EvalModel = Literal["pretrained", "instruct", "reasoning", "sft", "bai", "actor"]
EVAL_MODELS = typing.get_args(EvalModel)  # what the evaluate stage can score


class EvaluateSettings(_Strict):
    """Benchmark scoring by lm-evaluation-harness (HFLM over the local checkpoint); bai adds no scoring code."""

    suite: str | list[str] = Field("demo", description="demo (the demo family's eval split), paper (the lm-eval "
                                                        "tasks nearest the paper's Table 1), or lm-eval task names: "
                                                        "a list or a comma-separated string.")
    limit: int | None = Field(None, gt=0, description="Score only the first N examples of each task (a smoke test: "
                                                      "not comparable with full runs).")
    batch_size: int = Field(64, gt=0)
    max_gen_toks: int | None = Field(None, gt=0, description="Tokens an answer may have; default: each task's own "
                                                            "(bai_demo: 64). A reasoning model needs room for its "
                                                            "think block.")
    apply_chat_template: bool = Field(True, description="Prompt through the model's chat template.")
    think_end_token: str | None = Field("</think>", description="Only the text after the last one is scored "
                                                                "(lm-eval's think_end_token); null scores it all.")
    enable_thinking: bool | None = Field(None, description="Passed to chat templates that switch thinking on and "
                                                           "off (Qwen3 style); null: the template's default.")
    models: list[EvalModel] | None = Field(None, description="Which models to score (default: the RL actor when "
                                                             "train runs, else M_bai).")
    demo_family: str | None = Field(None, pattern=r"^[a-z]+@\d+$",
                                    description="size@seed of the demo family whose eval split the demo suite "
                                                "scores (default: read from the demo:// sources).")
    device: str | None = Field(None, description="cpu, cuda, cuda:0 ...; default: cuda when there is one.")
    confirm_run_unsafe_code: bool = Field(False, description="Let tasks that execute the model's code run it "
                                                             "(MBPP+; lm-eval's confirm_run_unsafe_code).")
    backend: Literal["hf", "vllm"] = Field("hf", description="lm-eval's model type: hf (transformers; measures "
                                                             "answer lengths) or vllm (where vLLM is installed).")
    deployment: str | None = Field(None, description="Score as this deployment (e.g. bai-evaluate/gpu) on its work "
                                                     "pool; unset: score in this process.")

    @property
    def task_names(self) -> list[str]:
        """The suite as given: a named suite's name alone, or the listed lm-eval task names."""
        names = self.suite if isinstance(self.suite, list) else self.suite.split(",")
        return [name.strip() for name in names if name.strip()]

    @model_validator(mode="after")
    def _consistent(self):
        if not self.task_names:
            raise ValueError("the suite names no task; give demo, paper, or lm-eval task names")
        if self.models is not None and not self.models:
            raise ValueError("no model to score; leave it unset for the default, or name some of "
                             + ", ".join(EVAL_MODELS))
        if self.models is not None and len(set(self.models)) < len(self.models):
            raise ValueError(f"models: each model is scored once; {self.models} names one twice")
        return self


class PipelineConfig(_Strict):
    name: str = Field("bai", pattern=r"^[A-Za-z0-9][\w.-]*$", description="Run name, used in artifact keys.")
    models: ModelsConfig
    merge: MergeSettings = MergeSettings()
    storage: StorageConfig = StorageConfig()
    train: TrainSettings | None = Field(None, description="RLHF from the merged actor; skipped while unset.")
    evaluate: EvaluateSettings | None = Field(None, description="lm-eval scoring; skipped while unset.")

    @model_validator(mode="after")
    def _scorable(self):
        if self.evaluate is not None and self.train is None and "actor" in (self.evaluate.models or []):
            raise ValueError("evaluate.models: `actor` is the RL actor, and this run has no train stage "
                             "(config.train); score bai, sft or a member instead")
        return self

    @property
    def scored_models(self) -> list[str]:
        """The models the evaluate stage scores, defaults applied."""
        if self.evaluate is None:
            return []
        return self.evaluate.models or ["actor" if self.train is not None else "bai"]


def load_pipeline_config(path: Path, overrides: list[str] = ()) -> PipelineConfig:
    """Read a YAML config and apply `key.sub=value` overrides (values parsed as YAML), then validate."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise BaiError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise BaiError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise BaiError(f"{path}: a config must be a YAML mapping")
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise BaiError(f"--set {override!r}: expected key=value, e.g. merge.alpha=0.2")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BaiError(f"--set {override!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return validated(PipelineConfig, **data)
