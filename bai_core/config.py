"""Typed configuration, validated at the edge. The CLI, the Python API and (later) the flows share these models."""

from __future__ import annotations

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
    """Build a config, turning pydantic's multi-line report into one BaiError line that names the key."""
    try:
        return model(**values)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or model.__name__
        message = first["msg"].removeprefix("Value error, ")
        raise BaiError(f"invalid {key}: {message}" if first["loc"] else f"invalid config: {message}") from None
