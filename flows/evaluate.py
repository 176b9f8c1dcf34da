"""lm-eval scoring as a flow of its own, `bai-evaluate`, so it can run on the GPU work pool (`bai-gpu`, prefect.yaml).

The pipeline scores in its own process unless `evaluate.deployment` names this flow's deployment; then it hands each
model's scoring over with tasks/handoff.py and takes the scores from the artifact store (the key is the same on both
sides, so a rerun finds them cached either way).
"""

from __future__ import annotations

from prefect import flow

from bai.tasks.artifacts import run_log, stop_signals_seen
from bai.tasks.evaluate import evaluate_model
from bai.tasks.storage import apply_credentials
from bai_core.evaluation.config import EvaluateSettings
from bai_core.storage import StorageConfig


def run_name() -> str:
    from prefect.runtime import flow_run

    model, settings = flow_run.parameters["model"], flow_run.parameters["settings"]
    settings = settings if isinstance(settings, dict) else settings.model_dump()
    suite = settings["suite"] if isinstance(settings["suite"], str) else ",".join(settings["suite"])
    return f"evaluate {model['name']} on {suite}"


@flow(name="bai-evaluate", flow_run_name=run_name)
def bai_evaluate(model: dict, settings: EvaluateSettings, storage: StorageConfig, metadata: dict) -> dict:
    """Score (or find published) one model; returns the EvalRef as JSON."""
    apply_credentials(storage)
    with run_log(), stop_signals_seen():
        return evaluate_model(model, settings, storage, metadata, return_state=True).result()
