"""The merge's configuration: `MergeSettings`, the pipeline's `merge:` section (weights and format), and the
`bai merge` jobs over local folders. Every job is one model, `WeightedMergeJob`: named inputs, and steps that each
write a weighted sum of them (or of an earlier step). `MergeJob` (both stages in one pass), `SftMergeJob` and
`BaiMergeJob` are that model under the paper's names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, Field, model_validator

from bai_core.merge.groups import GroupName
from bai_core.settings import Strict

OutputDtype = Literal["auto", "float32", "bfloat16", "float16"]
TokenizerFrom = Literal["reasoning", "instruct", "pretrained"]
TokenizerPolicy = Literal["warn", "strict"]
TOKENIZERS_HELP = ("What to do when the inputs' tokenizers give an id different texts: warn (one line naming each "
                   "id and its texts) or strict (refuse).")


def tokenizer_donors(tokenizer_from: TokenizerFrom) -> dict[str, str]:
    """Which input gives each merge its config.json, tokenizer, chat template and generation config, by the one rule
    the CLI and the pipeline share: M_sft takes the reasoning or instruct model's files (never the pretrained
    model's: M_sft holds none of its weights); M_bai takes M_sft's (so the same donor's), or the pretrained
    model's when `tokenizer_from` is pretrained."""
    if tokenizer_from == "pretrained":
        return {"sft": "reasoning", "bai": "pretrained"}
    return {"sft": tokenizer_from, "bai": "sft"}


def carried_role(model: str, tokenizer_from: TokenizerFrom) -> str:
    """The fetched role whose config.json and tokenizer files `model` of a run carries: a fetched role its own; M_sft
    and M_bai their donor's (`tokenizer_donors`, followed through M_sft)."""
    if model not in ("sft", "bai"):
        return model
    donors = tokenizer_donors(tokenizer_from)
    return donors["sft"] if donors[model] == "sft" else donors[model]


class GroupWeights(Strict):
    """One tensor group's own weights (merge/groups.py); unset, the stage's weight."""

    instruct_weight: float | None = Field(None, ge=0, le=1, description="w for this group's tensors.")
    alpha: float | None = Field(None, ge=0, le=1, description="alpha for this group's tensors.")


GroupsField = Field({}, description="Per tensor group (embeddings, attention, mlp, norms, lm_head), its own w "
                                    "and/or alpha, e.g. {attention: {alpha: 0.3}}; other tensors take the stage's.")


def stage_groups(stage: str, groups: dict[str, GroupWeights], base: float) -> dict[str, dict[str, float]]:
    """The groups' own weights one stage uses ({} when none): those set and not the stage's own `base` weight (so a
    merge whose groups all take the base weight is, and is keyed as, the merge without groups)."""
    field = "instruct_weight" if stage == "sft" else "alpha"
    return {group: {field: getattr(weights, field)} for group, weights in sorted(groups.items())
            if getattr(weights, field) not in (None, base)}


def group_terms(stage: str, groups: dict[str, GroupWeights],
                base: float) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    """Each group's own weighted sum for a stage ("sft": its instruct_weight; "bai": its alpha), where it has one."""
    return tuple((group, bai_terms(stage, next(iter(weights.values()))))
                 for group, weights in stage_groups(stage, groups, base).items())


class MergeSettings(Strict):
    """The pipeline's `merge:` section: both stages' weights and output format, no paths (the pipeline fetches the
    inputs and publishes the outputs; stage 1 and stage 2 run as separate cached stages). A `MergeJob` is the
    same arithmetic over folders the user names, for `bai merge`."""

    instruct_weight: float = Field(0.5, ge=0, le=1, description="w: M_sft = w*instruct + (1-w)*reasoning.")
    alpha: float = Field(0.5, ge=0, le=1, description="alpha: M_bai = alpha*pretrained + (1-alpha)*M_sft.")
    dtype: OutputDtype = "auto"
    tokenizer_from: TokenizerFrom = Field("reasoning", description="Donor of config.json, tokenizer, chat template and "
                                          "generation config (M_sft: reasoning or instruct; M_bai: M_sft's, or the "
                                          "pretrained model's when this is pretrained).")
    tokenizers: TokenizerPolicy = Field("warn", description=TOKENIZERS_HELP)
    max_shard_size: ByteSize = ByteSize(5 * 10**9)
    groups: dict[GroupName, GroupWeights] = GroupsField

    def formula(self, stage: str) -> str:
        """The merge a stage makes, with its weights: the one place the BAI formulas are written out with numbers
        (stage "sft": M_sft = w * instruct + (1 - w) * reasoning; "bai": M_bai = alpha * pretrained + ...), and
        the groups' own weights after it."""
        base = self.instruct_weight if stage == "sft" else self.alpha
        own = stage_groups(stage, self.groups, base)
        return formula(stage, base) + (
            " (" + ", ".join(f"{group} {next(iter(weights.values())):g}" for group, weights in own.items()) + ")"
            if own else "")


MERGED_NAMES = {"sft": "M_sft", "bai": "M_bai"}  # the paper's names of the two merges


def bai_terms(stage: str, weight: float) -> tuple[tuple[str, float], ...]:
    """The BAI method: each stage's weighted sum, (input, weight) pairs. Stage "sft" with weight w: w * instruct +
    (1 - w) * reasoning; stage "bai" with weight alpha: alpha * pretrained + (1 - alpha) * M_sft."""
    first, second = {"sft": ("instruct", "reasoning"), "bai": ("pretrained", "sft")}[stage]
    return (first, weight), (second, 1 - weight)


def formula(stage: str, weight: float) -> str:
    """'M_sft = 0.5 * instruct + 0.5 * reasoning' (stage "sft", weight w) or 'M_bai = 0.5 * pretrained + 0.5 * M_sft'
    (stage "bai", weight alpha)."""
    return f"{MERGED_NAMES[stage]} = " + " + ".join(f"{w:g} * {MERGED_NAMES.get(source, source)}"
                                                    for source, w in bai_terms(stage, weight))


class WriteOptions(Strict):
    """How merged checkpoints are checked, written and described."""

    dtype: OutputDtype = Field(
        "auto", description="Output dtype of floating-point tensors; auto keeps the inputs' (which must agree)."
    )
    max_shard_size: ByteSize = Field(
        ByteSize(5 * 10**9), description="Largest weight file written, e.g. 5GB or 500MB (a larger tensor stands alone)."
    )
    overwrite: bool = Field(False, description="Replace an existing output folder.")
    workers: int | None = Field(None, ge=1, description="Threads for reading, arithmetic and writing (default: cores).")
    tokenizers: TokenizerPolicy = Field("warn", description=TOKENIZERS_HELP)
    input_uris: dict[str, str] = Field({}, description="Where each input came from, as the manifest records it (a "
                                                       "hub id@commit, s3://, file://); default: its folder's file:// "
                                                       "URI.")


@dataclass(frozen=True)
class MergeStep:
    """One weighted sum of a merge job: `terms` are (an input's name or an earlier step's, weight)."""

    name: str
    terms: tuple[tuple[str, float], ...]
    output: Path | None  # the folder it is written to; None keeps it in memory for a later step
    group_terms: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()  # per tensor group, its own terms


class WeightedMergeJob(WriteOptions):
    """A merge over local folders: named inputs, the steps that sum them, and per written step the input whose
    config and tokenizer files its output keeps."""

    def inputs(self) -> dict[str, Path]:
        raise NotImplementedError

    def steps(self) -> list[MergeStep]:
        raise NotImplementedError

    def donors(self) -> dict[str, str]:
        raise NotImplementedError


class SftMergeJob(WeightedMergeJob):
    """One `bai merge --stage 1` run over local folders: M_sft = w * instruct + (1 - w) * reasoning."""

    instruct: Path
    reasoning: Path
    output: Path
    instruct_weight: float = Field(0.5, ge=0, le=1, description="w, the instruct model's weight.")
    tokenizer_from: Literal["reasoning", "instruct"] = "reasoning"
    groups: dict[GroupName, GroupWeights] = GroupsField

    @model_validator(mode="after")
    def _distinct_paths(self):
        _check_output_not_input(self.output, [self.instruct, self.reasoning])
        return self

    def inputs(self) -> dict[str, Path]:
        return {"instruct": self.instruct, "reasoning": self.reasoning}

    def steps(self) -> list[MergeStep]:
        return [MergeStep("sft", bai_terms("sft", self.instruct_weight), self.output,
                          group_terms("sft", self.groups, self.instruct_weight))]

    def donors(self) -> dict[str, str]:
        return {"sft": self.tokenizer_from}


class BaiMergeJob(WeightedMergeJob):
    """One `bai merge --stage 2` run over local folders: M_bai = alpha * pretrained + (1 - alpha) * M_sft."""

    pretrained: Path
    sft: Path
    output: Path
    alpha: float = Field(0.5, ge=0, le=1, description="alpha, the pretrained model's weight.")
    tokenizer_from: Literal["sft", "pretrained"] = "sft"
    groups: dict[GroupName, GroupWeights] = GroupsField

    @model_validator(mode="after")
    def _distinct_paths(self):
        _check_output_not_input(self.output, [self.pretrained, self.sft])
        return self

    def inputs(self) -> dict[str, Path]:
        return {"pretrained": self.pretrained, "sft": self.sft}

    def steps(self) -> list[MergeStep]:
        return [MergeStep("bai", bai_terms("bai", self.alpha), self.output,
                          group_terms("bai", self.groups, self.alpha))]

    def donors(self) -> dict[str, str]:
        return {"bai": self.tokenizer_from}


class MergeJob(WeightedMergeJob):
    """One `bai merge` run over local folders: both stages in one streaming pass; `stage1_output` also keeps M_sft
    as a checkpoint."""

    pretrained: Path
    instruct: Path
    reasoning: Path
    output: Path
    instruct_weight: float = Field(0.5, ge=0, le=1, description="w, the instruct model's weight in stage 1.")
    alpha: float = Field(0.5, ge=0, le=1, description="alpha, the pretrained model's weight in stage 2.")
    stage1_output: Path | None = Field(None, description="Also write M_sft here.")
    groups: dict[GroupName, GroupWeights] = GroupsField
    tokenizer_from: TokenizerFrom = Field(
        "reasoning", description="Donor of config.json, tokenizer, chat template and generation config: M_sft takes "
        "the reasoning or instruct model's (the reasoning model's when this is pretrained); M_bai takes M_sft's, or "
        "the pretrained model's when this is pretrained."
    )

    @model_validator(mode="after")
    def _distinct_paths(self):
        inputs = [self.pretrained, self.instruct, self.reasoning]
        _check_output_not_input(self.output, inputs)
        if self.stage1_output is not None:
            _check_output_not_input(self.stage1_output, inputs + [self.output])
        return self

    def inputs(self) -> dict[str, Path]:
        return {"pretrained": self.pretrained, "instruct": self.instruct, "reasoning": self.reasoning}

    def steps(self) -> list[MergeStep]:
        return [MergeStep("sft", bai_terms("sft", self.instruct_weight), self.stage1_output,
                          group_terms("sft", self.groups, self.instruct_weight)),
                MergeStep("bai", bai_terms("bai", self.alpha), self.output,
                          group_terms("bai", self.groups, self.alpha))]

    def donors(self) -> dict[str, str]:
        donors = tokenizer_donors(self.tokenizer_from)
        if donors["bai"] == "sft":  # in one pass M_sft is no folder: its files are its donor's
            donors["bai"] = donors["sft"]
        return donors


def _check_output_not_input(output: Path, others: list[Path]) -> None:
    for other in others:
        if output.resolve() == other.resolve():
            raise ValueError(f"output folder {output} is also an input or another output")
