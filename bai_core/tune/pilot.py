"""RL pilots, the study's second fidelity: a trial that survives a rung goes on with a few more GRPO steps from its
merge, and its actor is scored on the dev split again.

A pilot at rung k is the first `pilots.steps_at(k)` steps of the train section's planned run (its learning-rate
schedule unchanged), an ordinary cached train stage (`TrainStage` with `stop_at`) whose key also names the shorter
rung it continues: the longer rung resumes the shorter one's last checkpoint instead of starting over. The trial's
weights are not kept in the store, so a pilot that trains merges them again (deterministic: its fingerprint must be
the trial's) into a temporary folder, which is also the KL reference's start.

The value at a rung is the objective on the actor's dev scores, less `detector_penalty` when a stability detector
fired in the pilot (the trial is marked)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from bai_core import layout
from bai_core.artifact_stage import How, run_stage
from bai_core.errors import BaiError
from bai_core.evaluation.config import EvaluateSettings
from bai_core.evaluation.stage import EvaluateStage, ScoredModel
from bai_core.fingerprint import fingerprint_folder
from bai_core.merge.config import MergeSettings
from bai_core.rl.launch.config import LaunchSettings
from bai_core.rl.stage import ActorInit, TrainInputs, TrainRef, TrainStage, reward_model_paths
from bai_core.sources import CheckpointRef
from bai_core.storage import StorageConfig
from bai_core.tune.config import TuneSettings
from bai_core.tune.trial import merged_trial, objective


class PilotResult(BaseModel):
    rung: int
    steps: int                          # RL steps from the trial's merge
    value: float                        # the objective, less the penalty when a detector fired
    overall: float
    finished_share: float | None
    mean_answer_tokens: float | None
    fired: list[str]                    # the stability detectors that fired in the pilot's run so far
    train: str                          # the run in the store (train/<key>/)
    train_key: str
    evaluation: str
    seconds: float


def pilot_settings(tune: TuneSettings):
    """The pilots' train settings: the train section's run in one process, with nothing aborting it (a detector
    that fires costs the pilot `detector_penalty` instead)."""
    return tune.pilots.train.model_copy(update={"launch": LaunchSettings(), "abort_on": [], "deployment": None})


class PilotTrainStage(TrainStage):
    """A pilot's train stage: its init is the trial's merge, merged again into a temporary folder when it trains."""

    def __init__(self, trial: dict, refs: dict[str, CheckpointRef], merge: MergeSettings, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trial, self.refs, self.merge = trial, refs, merge
        self._init_path: Path | None = None

    def build(self) -> TrainRef:
        with merged_trial(self.trial["w"], self.trial["alpha"], self.refs, self.merge, self.storage,
                          self.trial.get("groups")) as self._init_path:
            if (merged := fingerprint_folder(self._init_path)) != self.inputs.init.fingerprint:
                raise BaiError(f"tune trial w={self.trial['w']:.3f} alpha={self.trial['alpha']:.3f}: merged again, "
                               f"its weights differ from the trial's ({merged[:12]} vs "
                               f"{self.inputs.init.fingerprint[:12]}); the merge is not reproducible here")
            try:
                return super().build()
            finally:
                self._init_path = None

    def local_inputs(self) -> tuple[Path, dict[str, Path]]:
        return self._init_path, reward_model_paths(self.inputs, self.storage)


def run_pilot(rung: int, trial: dict, earlier: dict | None, refs: dict[str, CheckpointRef], merge: MergeSettings,
              tune: TuneSettings, train_inputs: dict, dev: EvaluateSettings, metadata: dict,
              storage: StorageConfig, reasoning_tokens: float | None = None) -> tuple[PilotResult, How]:
    """The pilot of `trial` (a TrialResult as JSON) at `rung`, continuing the previous rung's run (`earlier`, a
    PilotResult as JSON; None at rung 1). Cached twice over: the train stage and the dev scoring."""
    if not trial.get("fingerprint"):
        raise BaiError(f"tune trial {trial['key'][:12]}: recorded before pilots existed (no merge fingerprint); "
                       "score it again with a fresh store")
    inputs = TrainInputs(init=ActorInit(name="trial", source=f"tune trial {trial['key']}",
                                        fingerprint=trial["fingerprint"]),
                         rewards=train_inputs["rewards"], prompts=train_inputs["prompts"])
    stage = PilotTrainStage(trial, refs, merge, inputs, pilot_settings(tune), storage,
                            stop_at=tune.pilots.steps_at(rung), continues=earlier["train_key"] if earlier else None)
    trained, how_trained = run_stage(stage)
    actor = ScoredModel(name=f"pilot w={trial['w']:.3f} alpha={trial['alpha']:.3f} {trained.steps} steps",
                        source=trained.actor, fingerprint=trained.fingerprint,
                        store_key=layout.actor_folder(trained.key))
    scored, how_scored = run_stage(EvaluateStage(actor, dev, storage, metadata))
    penalty = tune.pilots.detector_penalty if trained.fired else 0.0
    result = PilotResult(rung=rung, steps=trained.steps, value=objective(scored, tune, reasoning_tokens) - penalty,
                         overall=scored.overall, finished_share=scored.finished_share,
                         mean_answer_tokens=scored.mean_answer_tokens, fired=trained.fired, train=trained.uri,
                         train_key=trained.key, evaluation=scored.uri,
                         seconds=round(trained.seconds + scored.seconds, 2))
    return result, "cached" if how_trained == how_scored == "cached" else "built"
