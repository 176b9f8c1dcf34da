"""The paradigm comparison (the paper's Table 1) as a Prefect flow: one pipeline run per row (bai_core.experiments),
each with the same RL settings and suite, then one table and one plot of every RL run's length and reward curves.

Composition only: each row is the pipeline flow as a subflow, so its merges, RL run and evaluation are the cached
tasks the pipeline already has (a rerun with nothing changed is all cache hits), and each row keeps its own page in
the UI. With `train.deployment` set, each row's RL goes to the GPU pool through the hand-off.
"""

from __future__ import annotations

import base64
import re

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from bai.flows.pipeline import bai_pipeline
from bai_core import experiments, report
from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.storage import open_store


def publish_report(config: PipelineConfig, kind: str, rows: list[dict], names: list[str], png: bytes,
                   title: str, note: str = "") -> dict:
    """The table as a Prefect table artifact, a markdown artifact with the plot, and CSV / markdown / PNG files in
    the store under reports/<name>-<kind>/. Returns their URIs."""
    store = open_store(config.storage)
    folder = f"reports/{config.name}-{kind}"
    table_md = report.markdown(rows, names)
    uris = {"csv": store.put_text(f"{folder}/table.csv", report.csv_text(rows, names)),
            "markdown": store.put_text(f"{folder}/table.md", f"# {title}\n\n{table_md}\n{note}\n"),
            "plot": store.put_bytes(f"{folder}/plot.png", png)}
    key = re.sub(r"[^a-z0-9-]+", "-", f"{config.name}-{kind}".lower())
    create_table_artifact([{name: report.cell(row.get(name)) for name in names} for row in rows], key=key,
                          description=title)
    create_markdown_artifact(f"# {title}\n\n{table_md}\n{note}\n\n"
                             f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})\n\n"
                             f"Files: `{store.uri(folder)}`", key=f"{key}-plot", description=f"{title}: plot")
    return uris


@flow(name="bai-compare", flow_run_name="{config.name}-compare")
def bai_compare(config: PipelineConfig) -> dict:
    """Every row of the comparison, scored; returns the rows, where the table and plot were published, and each
    row's stage states."""
    store = open_store(config.storage)
    rows, curves, stages = [], {}, {}
    for variant, point in experiments.comparison_runs(config):
        try:
            summary = bai_pipeline(point)
        except BaiError as e:  # one row failing (e.g. abort_on stopped its RL) leaves the others to report
            get_run_logger().warning("%s (%s) failed: %s", variant.row, variant.start, e)
            rows.append({"row": variant.row, "start": variant.start, "error": str(e)})
            continue
        rows.append({"row": variant.row, "start": variant.start,
                     **report.run_row(summary, variant.scored, store, before=variant.init)})
        stages[variant.row] = {row["stage"]: row["state"] for row in summary["stages"]}
        if (run_curves := report.curves_of(summary, store)) is not None:
            curves[variant.row] = run_curves
    names = report.columns(rows, ("row", "start"))
    title = f"Paradigm comparison `{config.name}`: {config.train.algorithm} {config.train.steps} steps each, " \
            f"scored on {', '.join(config.evaluate.task_names)}"
    png = report.comparison_plot(curves, title.replace("`", ""))
    uris = publish_report(config, "compare", rows, names, png, title)
    return {"rows": rows, "columns": names, **uris, "stages": stages}
