"""Typed configuration, validated at the edge. The CLI, the Python API and (later) the flows share these models."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, model_validator

from bai_core.errors import BaiError

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


class NotYetAvailable(_Strict):
    """A stage the pipeline has a place for but cannot run yet: leaving it unset (null) skips it."""

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, values):
        raise ValueError("this stage is not available in this version of bai yet; leave it unset (null)")


class PipelineConfig(_Strict):
    name: str = Field("bai", pattern=r"^[A-Za-z0-9][\w.-]*$", description="Run name, used in artifact keys.")
    models: ModelsConfig
    merge: MergeSettings = MergeSettings()
    storage: StorageConfig = StorageConfig()
    train: NotYetAvailable | None = Field(None, description="RLHF from M_bai (on the GPU pool); skipped while unset.")
    evaluate: NotYetAvailable | None = Field(None, description="lm-eval scoring; skipped while unset.")


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
