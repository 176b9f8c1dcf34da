"""lm-eval scoring as a flow of its own, `bai-evaluate`, so it can run on the GPU work pool (`bai-gpu`, prefect.yaml).

The pipeline scores in its own process unless `evaluate.deployment` names this flow's deployment; then it hands each
model's scoring over with flows/handoff.py and takes the scores from the artifact store (the key is the same on both
sides, so a rerun finds them cached either way).
"""

from __future__ import annotations

from prefect import flow, task

from bai_core.config import EvaluateSettings, StorageConfig
from bai_core.errors import BaiError
from bai_core.evaluation import stage
from bai_core.pipeline import open_store
from flows.handoff import run_on_pool
from tasks.artifacts import run_log, stop_signals_seen
from tasks.evaluate import evaluate_is_published, evaluate_model
from tasks.storage import apply_credentials, result_storage


def run_name() -> str:
    from prefect.runtime import flow_run

    model, settings = flow_run.parameters["model"], flow_run.parameters["settings"]
    settings = settings if isinstance(settings, dict) else settings.model_dump()
    suite = settings["suite"] if isinstance(settings["suite"], str) else ",".join(settings["suite"])
    return f"evaluate {model['name']} on {suite}"


@flow(name="bai-evaluate", flow_run_name=run_name)
def bai_evaluate(model: dict, settings: EvaluateSettings, storage: StorageConfig, metadata: dict) -> dict:
    """Score (or find cached) one model; returns the EvalRef as JSON."""
    apply_credentials(storage)
    fresh = not evaluate_is_published(model, settings, storage, metadata)
    with run_log(), stop_signals_seen():
        return evaluate_model.with_options(result_storage=result_storage(storage), refresh_cache=fresh)(
            model, settings, storage, metadata)


@task(name="evaluate-on-pool", task_run_name="evaluate-on-{deployment}")
def evaluate_on_pool(deployment: str, model: dict, settings: EvaluateSettings, storage: StorageConfig,
                     metadata: dict) -> dict:
    """Run `bai-evaluate` as a deployment on its work pool and wait; the scores come back through the store."""
    key = stage.eval_key(stage.ScoredModel.model_validate(model), settings, metadata)
    store = open_store(storage)
    if (ref := stage.published_eval(store, key)) is not None:
        return ref.model_dump(mode="json")
    run_on_pool(deployment, {"model": model, "settings": settings.model_dump(mode="json"),
                             "storage": storage.model_dump(mode="json"), "metadata": metadata})
    ref = stage.published_eval(store, key)
    if ref is None:
        raise BaiError(f"deployment {deployment}: finished, but {store.uri(stage.evaluation_folder(key))} has no "
                       "published scores (does the worker use the same storage?)")
    return ref.model_copy(update={"built": True}).model_dump(mode="json")
