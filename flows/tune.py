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


def trial_rows(trials: list[dict], best: dict) -> tuple[list[dict], list[str]]:
    """A row per trial, what decides first (the UI's table scrolls): its weights, its value, whether it is the pick
    and, with pilots, where the pruner stopped it; then its merge's dev scores and the value after each rung's RL
    steps (a detector that fired marked)."""
    rung_columns = {p["rung"]: f"after {p['steps']} RL steps" for t in trials for p in t.get("pilots", [])}
    rows = []
    for t in trials:
        row = {"trial": t["trial"], "w": round(t["w"], 4), "alpha": round(t["alpha"], 4)}
        for group, weights in t.get("groups", {}).items():
            row |= {f"{name}[{group}]": round(value, 4) for name, value in (("w", weights.get("instruct_weight")),
                                                                          ("alpha", weights.get("alpha")))
                    if value is not None}
        row |= {"value": t["value"], "pick": "yes" if t["trial"] == best["trial"] else ""}
        if rung_columns:
            row["pruned"] = "" if t["pruned_at"] is None else f"at rung {t['pruned_at']}"
        row |= {"dev overall": t["overall"]}
        if rung_columns:
            row["merge value"] = round(t.get("merge_value", t["value"]), 4)
            for pilot in t["pilots"]:
                fired = f" ({', '.join(pilot['fired'])})" if pilot["fired"] else ""
                row[rung_columns[pilot["rung"]]] = f"{pilot['value']:.3f}{fired}"
        row |= {"finished": t["finished_share"], "answer tokens": t["mean_answer_tokens"]}
        rows.append(row)
    columns = [name for name in rows[0] if name not in rung_columns.values()]
    at = columns.index("finished")
    return rows, [*columns[:at], *(rung_columns[r] for r in sorted(rung_columns)), *columns[at:]]


@flow(name="bai-tune", flow_run_name="{config.name}-tune")
def bai_tune(config: PipelineConfig) -> dict:
    tuned = bai_pipeline(config)
    baseline = bai_pipeline(baseline_run(config)) if config.evaluate is not None else None
    trials, picked = tuned["trials"], tuned["tune_best"]
    best = {"w": tuned["merge"]["instruct_weight"], "alpha": tuned["merge"]["alpha"]}
    start = {"w": trials[0]["w"], "alpha": trials[0]["alpha"]}
    rows, columns = trial_rows(trials, picked)
    eval_scores = {"pick": _overall(tuned), "config": _overall(baseline)}
    chosen, first = trials[picked["trial"]], trials[0]
    pilots = config.tune.pilots
    at = f" after {pilots.steps_at(pilots.rungs)} RL steps" if pilots else ""
    note = (f"Pick: trial {chosen['trial']}, w {best['w']:.3f}, alpha {best['alpha']:.3f} (value {chosen['value']:.3f}"
            f" on the dev split{at}); trial 0 is the config's own weights (w {start['w']:.3f}, alpha "
            f"{start['alpha']:.3f}, value {first['value']:.3f}"
            f"{'' if first.get('pruned_at') is None else ', pruned at rung ' + str(first['pruned_at'])}).")
    if pilots:
        spent = sum(p["steps"] - (t["pilots"][i - 1]["steps"] if i else 0) for t in trials
                    for i, p in enumerate(t["pilots"]))
        pruned = sum(t["pruned_at"] is not None for t in trials)
        note += (f" RL pilots: {spent} steps in all; {pruned} of {len(trials)} trials pruned by successive halving "
                 f"(keep 1 in {pilots.keep}); the pick is the best of those that went through every rung (a pruned "
                 "trial's value is at the rung where it stopped).")
    if eval_scores["pick"] is not None:
        note += (f" On the eval split, scored once each: the pick {eval_scores['pick']:.3f}, the config's weights "
                 f"{eval_scores['config']:.3f}.")
    title = f"bai tune `{config.name}`: {len(trials)} trials on the dev split" + (
        f", RL pilots of {', '.join(str(pilots.steps_at(r)) for r in range(1, pilots.rungs + 1))} steps" if pilots
        else "")
    png = report.tune_plot(trials, best, start, title.replace("`", ""))
    uris = publish_report(config, "tune", rows, columns, png, title, note)
    return {"trials": trials, "rows": rows, "columns": columns, "best": best, "start": start,
            "bai": tuned["outputs"]["bai"], "eval": eval_scores, "note": note, "stages": tuned["stages"], **uris}


def _overall(summary: dict | None) -> float | None:
    scores = (summary or {}).get("outputs", {}).get("scores", {})
    return scores["bai"]["overall"] if "bai" in scores else None
