"""RL training as a flow of its own, `bai-train`, so it can run on the GPU work pool (`bai-gpu`, prefect.yaml).

The pipeline trains in its own process unless `train.deployment` names this flow's deployment; then it hands the
stage over with flows/handoff.py and takes the result from the artifact store (the key is the same on both sides, so
a rerun finds it cached either way).
"""

from __future__ import annotations

from prefect import flow, task

from bai_core.config import StorageConfig, TrainSettings
from bai_core.errors import BaiError
from bai_core.pipeline import open_store
from bai_core.rl import stage
from flows.handoff import run_on_pool
from tasks.artifacts import run_log, stop_signals_seen
from tasks.storage import apply_credentials, result_storage
from tasks.train import train_actor, train_is_published


def run_name() -> str:
    from prefect.runtime import flow_run

    settings = flow_run.parameters["settings"]
    settings = settings if isinstance(settings, dict) else settings.model_dump()
    return f"train {settings['algorithm']} from {settings['init']}: {settings['steps']} steps"


@flow(name="bai-train", flow_run_name=run_name)
def bai_train(inputs: dict, settings: TrainSettings, storage: StorageConfig) -> dict:
    """Train (or find cached) the actor for these resolved inputs; returns the TrainRef as JSON."""
    apply_credentials(storage)
    fresh = not train_is_published(inputs, settings, storage)
    with run_log(), stop_signals_seen():
        return train_actor.with_options(result_storage=result_storage(storage), refresh_cache=fresh)(
            inputs, settings, storage)


@task(name="train-on-pool", task_run_name="train-on-{deployment}")
def train_on_pool(deployment: str, inputs: dict, settings: TrainSettings, storage: StorageConfig) -> dict:
    """Run `bai-train` as a deployment on its work pool and wait; the result comes back through the store."""
    key = stage.train_key(stage.TrainInputs.model_validate(inputs), settings)
    store = open_store(storage)
    if (ref := stage.published_train(store, key)) is not None:
        return ref.model_dump(mode="json")
    run_on_pool(deployment, {"inputs": inputs, "settings": settings.model_dump(mode="json"),
                             "storage": storage.model_dump(mode="json")})
    ref = stage.published_train(store, key)
    if ref is None:
        raise BaiError(f"deployment {deployment}: finished, but {store.uri(stage.train_folder(key))} has no "
                       "published actor (does the worker use the same storage?)")
    return ref.model_copy(update={"built": True}).model_dump(mode="json")
