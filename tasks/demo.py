"""The demo family as a pipeline stage: trained once per (size, seed, recipe) into the artifact store, reported in
the UI as a table artifact, with a progress artifact while it trains."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact

from bai_core.config import StorageConfig
from bai_core.demo.family import LANGUAGE_MODELS, PHASES
from bai_core.demo.publish import ensure_demo_family, family_key
from bai_core.pipeline import open_store
from tasks.artifacts import ProgressArtifact

def _overall_percent(phase: str, step: int, total: int) -> float:
    return 100.0 * (PHASES.index(phase) + step / max(total, 1)) / len(PHASES)


@task(name="build-demo-family", task_run_name="build-demo-{size}")
def build_demo_family(size: str, seed: int, storage: StorageConfig) -> dict:
    """Train the demo family unless the store (or this machine) already has it; publish its report."""
    store = open_store(storage)
    on_progress = ProgressArtifact(f"training the {size} demo family (seed {seed})", _overall_percent)
    family = ensure_demo_family(size, seed, store, progress=on_progress)
    report = family.report
    rows = [_row(m, report.models[m], report.models[m]["fingerprint"][:23]) for m in LANGUAGE_MODELS]
    rows += [_row(f"M_sft (w {r['instruct_weight']:g})" if r["alpha"] is None else f"M_bai (alpha {r['alpha']:g})",
                  r, "merged here, not kept") for r in report.merges]
    rows.append({"model": "reward", "accuracy": f"{report.models['reward']['pairwise_accuracy']:.1%} pairwise",
                 "think blocks": "", "mean answer tokens": "", "finished": "", "plain-text accuracy": "",
                 "fingerprint": report.models["reward"]["fingerprint"][:23]})
    create_table_artifact(rows, key=f"demo-family-{size}-seed{seed}",
                          description=f"demo family ({size}, seed {seed}) and its merges (w = 0.5, the paper's alpha "
                                      "grid): held-out accuracy (reward model: pairwise accuracy on preference "
                                      "pairs), mean answer length in tokens, share of finished answers")
    return {"uri": store.uri(family_key(size, seed)), "size": size, "seed": seed, "report": report.to_json()}


def _row(name: str, metrics: dict, fingerprint: str) -> dict:
    plain = metrics.get("plain_text_accuracy")
    return {"model": name, "accuracy": f"{metrics['accuracy']:.1%}", "think blocks": f"{metrics['think_rate']:.0%}",
            "mean answer tokens": f"{metrics['mean_answer_tokens']:.1f}", "finished": f"{metrics['finished_rate']:.0%}",
            "plain-text accuracy": "" if plain is None else f"{plain:.1%}", "fingerprint": fingerprint}
