"""RL training as a flow of its own, `bai-train`, so it can run on the GPU work pool (`bai-gpu`, prefect.yaml).

The pipeline trains in its own process unless `train.deployment` names this flow's deployment; then it hands the
stage over with tasks/handoff.py and takes the result from the artifact store (the key is the same on both sides, so
a rerun finds it cached either way).
"""

from __future__ import annotations

from prefect import flow

from bai.tasks.artifacts import run_log, stop_signals_seen
from bai.tasks.storage import apply_credentials
from bai.tasks.train import train_actor
from bai_core.rl.config import TrainSettings
from bai_core.storage import StorageConfig


def run_name() -> str:
    from prefect.runtime import flow_run

    settings = flow_run.parameters["settings"]
    settings = settings if isinstance(settings, dict) else settings.model_dump()
    name = f"train {settings['algorithm']} from {settings['init']}: {settings['steps']} steps"
    launch = settings.get("launch") or {}
    if launch.get("machines", 1) > 1:  # one run per machine (tasks/handoff.py:stage_on_machines)
        name += f" (machine {launch.get('machine_rank') or 0} of {launch['machines']})"
    return name


@flow(name="bai-train", flow_run_name=run_name)
def bai_train(inputs: dict, settings: TrainSettings, storage: StorageConfig) -> dict:
    """Train (or find published) the actor for these resolved inputs; returns the TrainRef as JSON."""
    apply_credentials(storage)
    with run_log(), stop_signals_seen():
        return train_actor(inputs, settings, storage, return_state=True).result()
