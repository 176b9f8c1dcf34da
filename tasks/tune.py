"""Prefect tasks over `bai_core.tune`: check the study's dev suite (and its pilots' RL inputs) before anything
merges, then one task per trial and one per RL pilot rung (each cached on its key: a rerun shows them Cached)."""

from __future__ import annotations

from prefect import task

from bai.tasks.stage import STAGE_TASK, finished, not_a_user_error
from bai_core import plan
from bai_core.artifact_stage import run_stage
from bai_core.config import PipelineConfig
from bai_core.evaluation import harness
from bai_core.evaluation.config import EvaluateSettings
from bai_core.evaluation.stage import EvaluateStage, ScoredModel, suite_metadata
from bai_core.rl.stage import prepare_train
from bai_core.sources import CheckpointRef
from bai_core.tune.pilot import pilot_settings, run_pilot
from bai_core.tune.study import dev_settings
from bai_core.tune.trial import TrialStage


def _refs(refs: dict) -> dict[str, CheckpointRef]:
    return {role: CheckpointRef.model_validate(ref) for role, ref in refs.items()}


@task(name="prepare-tune", retries=1, retry_condition_fn=not_a_user_error)
def prepare_tune(config: PipelineConfig, refs: dict) -> dict:
    """The dev suite checked (no task of the eval suite, lm-eval knows its tasks, the metric exists) and its
    metadata resolved, the pilots' prompts and rewards checked, before anything is merged; with a length term, the
    reasoning member's mean answer length on the dev split (its scoring cached like any evaluation)."""
    dev = dev_settings(config)
    tasks = harness.suite_tasks(dev)
    harness.check_task_names(tasks)
    harness.check_unsafe_code(tasks, dev)
    harness.check_datasets_offline(tasks)
    metadata = suite_metadata(dev, plan.checkpoint_sources(config))
    prepared = {"dev": dev.model_dump(mode="json"), "metadata": metadata, "reasoning_tokens": None, "train": None}
    if config.tune.pilots is not None:
        prepared["train"] = prepare_train(pilot_settings(config.tune), _refs(refs), config.merge, config.storage)
    if config.tune.length_weight:
        reasoning = CheckpointRef.model_validate(refs["reasoning"])
        scored, _ = run_stage(EvaluateStage(ScoredModel(name="reasoning", source=reasoning.uri,
                                                        fingerprint=reasoning.fingerprint),
                                            dev, config.storage, metadata))
        prepared["reasoning_tokens"] = scored.mean_answer_tokens
    return prepared


@task(name="tune-trial", task_run_name="trial-{number}", **STAGE_TASK)
def tune_trial(number: int, w: float, alpha: float, refs: dict, config: PipelineConfig, prepared: dict,
               groups: dict | None = None):
    """Merge at (w, alpha) (and the groups' own weights), score it on the dev split (or find the trial published)."""
    stage = TrialStage(w, alpha, _refs(refs), config.merge, config.tune, EvaluateSettings.model_validate(
        prepared["dev"]), prepared["metadata"], config.storage, prepared["reasoning_tokens"], groups)
    result, how = run_stage(stage)
    return finished(result, how, stage.damaged)


@task(name="tune-pilot", task_run_name="trial-{number}-pilot-{rung}", **STAGE_TASK)
def tune_pilot(number: int, rung: int, trial: dict, earlier: dict | None, refs: dict, config: PipelineConfig,
               prepared: dict):
    """The trial's RL pilot at `rung` (continuing its previous rung's run), its actor scored on the dev split."""
    result, how = run_pilot(rung, trial, earlier, _refs(refs), config.merge, config.tune, prepared["train"],
                            EvaluateSettings.model_validate(prepared["dev"]), prepared["metadata"], config.storage,
                            prepared["reasoning_tokens"])
    return finished(result, how)
