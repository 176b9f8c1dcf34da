"""The demo family as a pipeline stage: trained once per (size, seed, recipe) into the artifact store, reported in
the UI as a table artifact, with a progress artifact while it trains."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from bai_core.config import StorageConfig
from bai_core.demo.family import LANGUAGE_MODELS, MEMBERS
from bai_core.demo.publish import ensure_demo_family, family_key
from bai_core.pipeline import open_store
from bai_core import progress

PHASES = [*MEMBERS, "evaluate"]


class _TrainingProgress:
    def __init__(self, size: str):
        self.artifact_id = create_progress_artifact(progress=0.0, description=f"training the {size} demo family")
        self.shown = 0.0

    def __call__(self, phase: str, step: int, total: int) -> None:
        progress.report(phase, step, total)
        percent = 100.0 * (PHASES.index(phase) + step / max(total, 1)) / len(PHASES)
        if percent - self.shown >= 2.0:
            update_progress_artifact(self.artifact_id, progress=percent)
            self.shown = percent


@task(name="build-demo-family", task_run_name="build-demo-{size}")
def build_demo_family(size: str, seed: int, storage: StorageConfig) -> dict:
    """Train the demo family unless the store (or this machine) already has it; publish its report."""
    store = open_store(storage)
    family = ensure_demo_family(size, seed, store, progress=_TrainingProgress(size))
    report = family.report
    rows = [{"model": m, "accuracy": report.models[m]["accuracy"], "think_rate": report.models[m]["think_rate"],
             "mean_answer_tokens": report.models[m]["mean_answer_tokens"],
             "plain_text_accuracy": report.models[m]["plain_text_accuracy"],
             "fingerprint": report.models[m]["fingerprint"][:23]} for m in LANGUAGE_MODELS]
    rows.append({"model": "reward", "accuracy": report.models["reward"]["pairwise_accuracy"],
                 "fingerprint": report.models["reward"]["fingerprint"][:23]})
    create_table_artifact(rows, key=f"demo-family-{size}-seed{seed}",
                          description=f"demo family ({size}, seed {seed}): held-out accuracy (reward model: pairwise "
                                      "accuracy on preference pairs) and mean answer length in tokens")
    return {"uri": store.uri(family_key(size, seed)), "size": size, "seed": seed, "report": report.to_json()}
