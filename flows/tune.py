"""`bai tune` as a Prefect flow: the pipeline with its `tune:` section (the trials, then the best weights merged as
M_bai and scored once on the eval split), the same run at the config's own weights scored beside it, and a report:
the trials as a table, the (w, alpha) plane and the history as a plot."""

from __future__ import annotations

from prefect import flow

from bai.flows.pipeline import bai_pipeline
from bai.tasks.artifacts import publish_report
from bai_core import report
from bai_core.config import PipelineConfig
from bai_core.tune.study import baseline_run

COLUMNS = ["trial", "w", "alpha", "value", "dev overall", "finished", "answer tokens", "pick"]


@flow(name="bai-tune", flow_run_name="{config.name}-tune")
def bai_tune(config: PipelineConfig) -> dict:
    tuned = bai_pipeline(config)
    baseline = bai_pipeline(baseline_run(config)) if config.evaluate is not None else None
    trials = tuned["trials"]
    best = {"w": tuned["merge"]["instruct_weight"], "alpha": tuned["merge"]["alpha"]}
    start = {"w": trials[0]["w"], "alpha": trials[0]["alpha"]}
    rows = [{"trial": t["trial"], "w": round(t["w"], 4), "alpha": round(t["alpha"], 4), "value": t["value"],
             "dev overall": t["overall"], "finished": t["finished_share"], "answer tokens": t["mean_answer_tokens"],
             "pick": "yes" if (t["w"], t["alpha"]) == (best["w"], best["alpha"]) else ""} for t in trials]
    eval_scores = {"pick": _overall(tuned), "config": _overall(baseline)}
    note = (f"Pick: w {best['w']:.3f}, alpha {best['alpha']:.3f} (value {max(t['value'] for t in trials):.3f} on the "
            f"dev split); trial 0 is the config's own weights (w {start['w']:.3f}, alpha {start['alpha']:.3f}, value "
            f"{trials[0]['value']:.3f}).")
    if eval_scores["pick"] is not None:
        note += (f" On the eval split, scored once each: the pick {eval_scores['pick']:.3f}, the config's weights "
                 f"{eval_scores['config']:.3f}.")
    title = f"bai tune `{config.name}`: {len(trials)} trials on the dev split"
    png = report.tune_plot(trials, best, start, title.replace("`", ""))
    uris = publish_report(config, "tune", rows, COLUMNS, png, title, note)
    return {"trials": trials, "rows": rows, "columns": COLUMNS, "best": best, "start": start,
            "bai": tuned["outputs"]["bai"], "eval": eval_scores, "note": note, "stages": tuned["stages"], **uris}


def _overall(summary: dict | None) -> float | None:
    scores = (summary or {}).get("outputs", {}).get("scores", {})
    return scores["bai"]["overall"] if "bai" in scores else None
