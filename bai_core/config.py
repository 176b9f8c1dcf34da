"""The pipeline's configuration, validated at the edge: one model that the CLI (`bai run`), the flows (their
parameter) and prefect.yaml share. Each section's model lives beside what it configures (merge/config.py,
rl/config.py, evaluation/config.py); this module composes them and adds the models and the store."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from bai_core.errors import BaiError
from bai_core.evaluation.config import EvaluateSettings
from bai_core.merge.config import MergeSettings, carried_role
from bai_core.rl.config import TrainSettings
from bai_core.settings import Strict, validated
from bai_core.storage import StorageConfig
from bai_core.tune.config import TuneSettings

ROLES = ("pretrained", "instruct", "reasoning")  # the three checkpoints, in the order the pipeline fetches them


class ModelsConfig(Strict):
    """The three checkpoints: local folders, s3://bucket/prefix, hub ids org/name[@revision], or demo://..."""

    pretrained: str
    instruct: str
    reasoning: str


class PipelineConfig(Strict):
    name: str = Field("bai", pattern=r"^[A-Za-z0-9][\w.-]*$", description="Run name, used in artifact keys.")
    models: ModelsConfig
    merge: MergeSettings = MergeSettings()
    storage: StorageConfig = StorageConfig()
    train: TrainSettings | None = Field(None, description="RLHF from the merged actor; skipped while unset.")
    evaluate: EvaluateSettings | None = Field(None, description="lm-eval scoring; skipped while unset.")
    tune: TuneSettings | None = Field(None, description="Search the merge weights (bai tune) and merge with the "
                                                        "best; merge.instruct_weight and merge.alpha while unset.")

    @model_validator(mode="after")
    def _scorable(self):
        if self.evaluate is not None and self.train is None and "actor" in (self.evaluate.models or []):
            raise ValueError("evaluate.models: `actor` is the RL actor, and this run has no train stage "
                             "(config.train); score bai, sft or a member instead")
        return self

    @model_validator(mode="before")
    @classmethod
    def _pilots_train(cls, data):
        """Tune's RL pilots are the first steps of the train section's run, from each trial's M_bai."""
        tune = data.get("tune") if isinstance(data, dict) else None
        pilots = tune.get("pilots") if isinstance(tune, dict) else None
        if not isinstance(pilots, dict) or pilots.get("train") is not None:
            return data
        train = data.get("train")
        if train is None:
            raise ValueError("tune.pilots: RL pilots need a train section (their reward, prompts and settings)")
        init = train.get("init", "bai") if isinstance(train, dict) else train.init
        if init != "bai":
            raise ValueError(f"tune.pilots: train.init is {init!r}; pilots search the RL start M_bai, so train "
                             "from bai")
        return {**data, "tune": {**tune, "pilots": {**pilots, "train": train}}}

    @property
    def scored_models(self) -> list[str]:
        """The models the evaluate stage scores, defaults applied."""
        if self.evaluate is None:
            return []
        return self.evaluate.models or ["actor" if self.train is not None else "bai"]

    def carried_source(self, model: str) -> str:
        """The source whose config.json and tokenizer `model` of this run carries (so its context length): a
        member its own; M_sft and M_bai their donor's (merge.tokenizer_from); the RL actor its start's."""
        if model == "actor":
            model = self.train.init
        role = carried_role(model, self.merge.tokenizer_from)
        return getattr(self.models, role) if role in ROLES else role


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
