"""Prefect tasks over `bai_core.tune`: check the study's dev suite before anything merges, then one task per trial
(cached on the trial's key: a rerun shows finished trials Cached)."""

from __future__ import annotations

from prefect import task

from bai.tasks.stage import STAGE_TASK, finished, not_a_user_error
from bai_core import plan
from bai_core.artifact_stage import run_stage
from bai_core.config import PipelineConfig
from bai_core.evaluation import harness
from bai_core.evaluation.config import EvaluateSettings
from bai_core.evaluation.stage import suite_metadata
from bai_core.sources import CheckpointRef
from bai_core.tune.study import dev_settings
from bai_core.tune.trial import TrialStage


@task(name="prepare-tune", retries=1, retry_condition_fn=not_a_user_error)
def prepare_tune(config: PipelineConfig) -> dict:
    """The dev suite checked (no task of the eval suite, lm-eval knows its tasks, the metric exists) and its
    metadata resolved, before anything is merged."""
    dev = dev_settings(config)
    tasks = harness.suite_tasks(dev)
    harness.check_task_names(tasks)
    harness.check_unsafe_code(tasks, dev)
    harness.check_datasets_offline(tasks)
    return {"dev": dev.model_dump(mode="json"), "metadata": suite_metadata(dev, plan.checkpoint_sources(config))}


@task(name="tune-trial", task_run_name="trial-{number}", **STAGE_TASK)
def tune_trial(number: int, w: float, alpha: float, refs: dict, config: PipelineConfig, prepared: dict):
    """Merge at (w, alpha), score it on the dev split (or find the trial published)."""
    stage = TrialStage(w, alpha, {role: CheckpointRef.model_validate(ref) for role, ref in refs.items()},
                       config.merge, config.tune, EvaluateSettings.model_validate(prepared["dev"]),
                       prepared["metadata"], config.storage)
    result, how = run_stage(stage)
    return finished(result, how, stage.damaged)
