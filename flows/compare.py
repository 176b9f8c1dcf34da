"""The paradigm comparison (the paper's Table 1) as a Prefect flow: one pipeline run per row (bai_core.experiments),
each with the same RL settings and suite, then one table and one plot of every RL run's length and reward curves.

Composition only: each row is the pipeline flow as a subflow, so its merges, RL run and evaluation are the cached
tasks the pipeline already has (a rerun with nothing changed is all cache hits), and each row keeps its own page in
the UI. With `train.deployment` set, each row's RL goes to the GPU pool through the hand-off. With a concurrent
`fanout`, the rows run at once on Dask (flows/fanout.py, the path tune's trials take).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from bai.flows.fanout import run_pipelines
from bai.tasks.artifacts import publish_report
from bai_core import experiments, report
from bai_core.config import PipelineConfig
from bai_core.fanout import Fanout
from bai_core.io import tables
from bai_core.storage import open_store


@flow(name="bai-compare", flow_run_name="{config.name}-compare")
def bai_compare(config: PipelineConfig, fanout: Fanout | None = None) -> dict:
    """Every row of the comparison, scored (one after another, or `fanout.workers` at once on Dask); returns the
    rows, where the table and plot were published, and each row's stage states."""
    store = open_store(config.storage)
    rows, curves, stages = [], {}, {}
    runs = experiments.comparison_runs(config)
    for (variant, point), outcome in zip(runs, run_pipelines(f"{config.name}-compare", [p for _, p in runs], fanout)):
        if "error" in outcome:  # one row failing (e.g. abort_on stopped its RL) leaves the others to report
            get_run_logger().warning("%s (%s) failed: %s", variant.row, variant.start, outcome["error"])
            rows.append({"row": variant.row, "start": variant.start, "error": outcome["error"]})
            continue
        summary = outcome["summary"]
        rows.append({"row": variant.row, "start": variant.start,
                     **report.run_row(summary, variant.scored, store, before=variant.init)})
        stages[variant.row] = {row["stage"]: row["state"] for row in summary["stages"]}
        if (run_curves := report.curves_of(summary, store)) is not None:
            curves[variant.row] = run_curves
    names = tables.columns(rows, ("row", "start"))
    title = f"Paradigm comparison `{config.name}`: {config.train.algorithm} {config.train.steps} steps each, " \
            f"scored on {', '.join(config.evaluate.task_names)}"
    png = report.comparison_plot(curves, title.replace("`", ""))
    uris = publish_report(config, "compare", rows, names, png, title)
    return {"rows": rows, "columns": names, **uris, "stages": stages}
