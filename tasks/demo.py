"""The demo family as a pipeline stage: the family shipped with bai (verified file by file), or one trained once per
(size, seed, recipe), published into the artifact store and reported in the UI as a table artifact, with a progress
artifact while it trains. Cached like the merges: `run_stage` over `FamilyStage`, trusted while the store holds it
intact."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact

from bai.tasks.artifacts import ProgressArtifact
from bai.tasks.stage import STAGE_TASK, finished
from bai_core import progress
from bai_core.artifact_stage import run_stage
from bai_core.demo.family import LANGUAGE_MODELS, PHASES
from bai_core.demo.publish import FamilyStage, family_key
from bai_core.storage import StorageConfig, open_store

# Where the family came from, in words that stay true when a rerun shows the stage Cached.
ORIGINS = {"shipped": "shipped with bai, verified", "store": "from the store", "machine": "trained on this machine",
           "trained": "trained on this machine"}


def _overall_percent(phase: str, step: int, total: int) -> float:
    return 100.0 * (PHASES.index(phase) + step / max(total, 1)) / len(PHASES)


@task(name="demo-family", task_run_name="demo-family-{size}", **STAGE_TASK)
def demo_family(size: str, seed: int, storage: StorageConfig):
    """The demo family in the store: shipped, found there, or trained once; its report as a table artifact."""
    store = open_store(storage)
    on_progress = ProgressArtifact(f"training the {size} demo family (seed {seed})", _overall_percent)
    family, how = run_stage(FamilyStage(size, seed, store, on_progress))
    report = family.report
    machine = (report.built_on or {}).get("cpu", "an unrecorded machine")
    progress.note(f"demo family {size} seed {seed}, recipe {report.recipe}, trained on {machine}: "
                  f"{ORIGINS[family.origin]} -> {store.uri(family_key(size, seed))}")
    rows = [_row(m, report.models[m], report.models[m]["fingerprint"][:23]) for m in LANGUAGE_MODELS]
    rows += [_row(f"M_sft (w {r['instruct_weight']:g})" if r["alpha"] is None else f"M_bai (alpha {r['alpha']:g})",
                  r, "merged here, not kept") for r in report.merges]
    rows.append({"model": "reward", "accuracy": f"{report.models['reward']['pairwise_accuracy']:.1%} pairwise",
                 "think blocks": "n/a", "mean answer tokens": "n/a", "finished": "n/a", "plain-text accuracy": "n/a",
                 "fingerprint": report.models["reward"]["fingerprint"][:23]})
    create_table_artifact(rows, key=f"demo-family-{size}-seed{seed}",
                          description=f"demo family ({size}, seed {seed}, recipe {report.recipe}, trained on "
                                      f"{machine}) and its merges (w = 0.5, the paper's alpha grid) on the eval "
                                      "split: accuracy (reward model: pairwise accuracy on preference pairs), mean "
                                      "answer length in tokens, share of finished answers")
    return finished({"uri": store.uri(family_key(size, seed)), "size": size, "seed": seed, "recipe": report.recipe,
                     "origin": family.origin}, how)


def _row(name: str, metrics: dict, fingerprint: str) -> dict:
    plain = metrics.get("plain_text_accuracy")
    return {"model": name, "accuracy": f"{metrics['accuracy']:.1%}", "think blocks": f"{metrics['think_rate']:.0%}",
            "mean answer tokens": f"{metrics['mean_answer_tokens']:.1f}", "finished": f"{metrics['finished_rate']:.0%}",
            "plain-text accuracy": "n/a" if plain is None else f"{plain:.1%}", "fingerprint": fingerprint}
