"""Prefect tasks over `bai_core.evaluation.stage`: check the suite, then score a model with lm-eval (cached on the
content key: model fingerprint + suite definition + settings + lm-eval version), with a progress artifact while it
generates and its scores as a table artifact after."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact

from bai.tasks.artifacts import ProgressArtifact
from bai.tasks.stage import STAGE_TASK, finished, not_a_user_error
from bai_core.artifact_stage import run_stage
from bai_core.evaluation import stage
from bai_core.evaluation.config import EvaluateSettings
from bai_core.evaluation.stage import EvaluateStage, ScoredModel
from bai_core.storage import StorageConfig


@task(name="prepare-evaluate", retries=1, retry_condition_fn=not_a_user_error)
def prepare_evaluate(settings: EvaluateSettings, sources: list[str], carried: dict[str, str],
                     storage: StorageConfig) -> dict:
    """Task names checked against lm-eval's registry, the demo split resolved and each scored model's context
    checked against max_gen_toks (`carried`: model name -> the source whose config it carries), before anything is
    merged."""
    return stage.prepare_evaluate(settings, sources, carried, storage)


@task(name="evaluate", **STAGE_TASK)
def evaluate_model(model: dict, settings: EvaluateSettings, storage: StorageConfig, metadata: dict):
    """Score one model with lm-eval (or find its scores published); its scores as a table artifact."""
    scored = ScoredModel.model_validate(model)
    bar = ProgressArtifact(f"lm-eval: {scored.name} on {', '.join(settings.task_names)}")
    scoring = EvaluateStage(scored, settings, storage, metadata, report=bar)
    ref, how = run_stage(scoring)
    create_table_artifact(table=score_table([ref.model_dump(mode="json")]), key=f"scores-{ref.key[:12]}",
                          description=f"lm-eval scores of {scored.name} ({scored.fingerprint[:19]})")
    return finished(ref, how, scoring.damaged)


def score_table(refs: list[dict]) -> list[dict]:
    """Rows of a Prefect table artifact: each model's tasks, then its overall when it has several."""
    def cell(value):
        if isinstance(value, float):
            return round(value, 4)  # a table to read; scores.json keeps lm-eval's figures whole
        return "n/a" if value is None else value  # a lone "-" shows as a bullet in the UI's tables

    rows = []
    for ref in refs:
        for row in ref["rows"]:
            rows.append({"model": ref["model"], "task": row["task"], "stands for": row["stands_for"],
                         "metric": row["metric"], "score": cell(row["score"]), "stderr": cell(row["stderr"]),
                         "examples": row["examples"], "finished": cell(row["finished_share"]),
                         "mean tokens": cell(row["mean_answer_tokens"])})
        if len(ref["rows"]) > 1:
            rows.append({"model": ref["model"], "task": "overall", "stands for": "mean of primary metrics",
                         "metric": "", "score": ref["overall"], "stderr": "", "examples": "",
                         "finished": cell(ref["finished_share"]), "mean tokens": cell(ref["mean_answer_tokens"])})
    return rows
