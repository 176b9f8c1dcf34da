"""The scored alpha sweep (the paper's ratio ablation, Table 2) as a Prefect flow: one pipeline run per alpha
(bai_core.experiments). Stage 1 does not depend on alpha, so it is merged once and every other point finds it
cached; each point's M_bai is scored, or, with `rl_steps`, a short RL pilot from it is run and its actor scored.

The table names the recommended alpha: the best `objective` (the overall score, or one task's) among the points
whose pilot showed no length collapse. With `pipeline_deployment` set, each point runs as a deployment run on that
deployment's work pool (see tasks/handoff.py); otherwise as subflows in this process, one after another, or with a
concurrent `fanout`, at once on Dask (flows/fanout.py, the path tune's trials take).
"""

from __future__ import annotations

import json

from prefect import flow

from bai.flows.fanout import run_pipelines
from bai.tasks.artifacts import publish_report
from bai.tasks.handoff import run_on_pool
from bai_core import experiments, layout, report
from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.fanout import Fanout
from bai_core.io import tables
from bai_core.storage import open_store


@flow(name="bai-sweep", flow_run_name="{config.name}-sweep")
def bai_sweep(config: PipelineConfig, alphas: list[float], rl_steps: int | None = None, objective: str = "overall",
              pipeline_deployment: str | None = None, fanout: Fanout | None = None) -> dict:
    experiments.check_objective(config, objective)  # before the first point runs, not after the last
    store = open_store(config.storage)
    rows, stages, ran_on = [], {}, {}
    points = experiments.sweep_runs(config, alphas, rl_steps)
    if pipeline_deployment is None:
        outcomes = run_pipelines(f"{config.name}-sweep", points, fanout, stop_at_error=True)
        if failed := next((o["error"] for o in outcomes if "error" in o), None):
            raise BaiError(failed)
        summaries = [o["summary"] for o in outcomes]
    else:
        summaries = []
        for point in points:
            child = run_on_pool(pipeline_deployment, {"config": point.model_dump(mode="json")})
            summaries.append(json.loads(store.get_text(layout.run_summary(point.name, str(child.id)))))
    for point, summary in zip(points, summaries):
        model = "actor" if rl_steps else "bai"
        rows.append({"alpha": point.merge.alpha, "scored": "RL actor" if model == "actor" else "M_bai",
                     **report.run_row(summary, model, store, before="bai" if rl_steps else None),
                     "M_bai": summary["outputs"]["bai"],
                     "merge-stage1": _state(summary, "merge-stage1"), "merge-stage2": _state(summary, "merge-stage2")})
        stages[point.merge.alpha] = {row["stage"]: row["state"] for row in summary["stages"]}
        ran_on[point.merge.alpha] = summary.get("ran_on", "")
    scored = "overall" in rows[0]
    if scored and objective not in rows[0]:
        raise BaiError(f"objective {objective!r} is not a column of the sweep (overall or a task: "
                       f"{', '.join(k for k in rows[0] if k not in ('alpha', 'scored'))})")
    best = report.recommend(rows, objective) if scored else None
    for row in rows:
        row["recommended"] = "yes" if row is best else ""
    names = tables.columns(rows, ("alpha", "scored", "recommended"))
    pilots = f"an RL pilot of {rl_steps} steps per alpha" if rl_steps else "each M_bai scored without RL"
    title = f"Alpha sweep `{config.name}`: {pilots}"
    note = (f"Recommended alpha: {best['alpha']:g} (best {objective} among the points without a detected length "
            "collapse)." if best else "No point qualifies: every pilot collapsed." if scored else
            "Not scored: the config has no `evaluate:` section.")
    png = report.sweep_plot(rows, objective if scored else None, title.replace("`", ""))
    uris = publish_report(config, "sweep", rows, names, png, title, note)
    return {"rows": rows, "columns": names, "recommended": best["alpha"] if best else None, **uris,
            "stages": stages, "ran_on": ran_on}


def _state(summary: dict, stage: str) -> str:
    return next((row["state"] for row in summary["stages"] if row["stage"] == stage), "-")
