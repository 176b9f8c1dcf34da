"""A sweep over alpha (the paper's ratio ablation): one pipeline per value. Stage 1 does not depend on alpha, so it
is merged once and every other point finds it cached.

With `pipeline_deployment` set, each point runs as a deployment run on that deployment's work pool (see
flows/handoff.py); otherwise as subflows in this process.
"""

from __future__ import annotations

import json

from prefect import flow
from prefect.artifacts import create_table_artifact

from bai_core.config import PipelineConfig
from bai_core.pipeline import open_store
from flows.handoff import run_on_pool
from flows.pipeline import bai_pipeline


@flow(name="bai-sweep", flow_run_name="{config.name}-sweep")
def bai_sweep(config: PipelineConfig, alphas: list[float], pipeline_deployment: str | None = None) -> list[dict]:
    summaries = []
    for alpha in alphas:
        point = config.model_copy(update={"name": f"{config.name}-alpha{alpha:g}",
                                          "merge": config.merge.model_copy(update={"alpha": alpha})})
        point = PipelineConfig.model_validate(point.model_dump())  # re-validate the updated values
        if pipeline_deployment is None:
            summaries.append(bai_pipeline(point))
        else:
            child = run_on_pool(pipeline_deployment, {"config": point.model_dump(mode="json")})
            text = open_store(point.storage).get_text(f"runs/{point.name}/{child.id}.json")
            summaries.append(json.loads(text))
    rows = [{"alpha": s["merge"]["alpha"], "M_bai": s["outputs"]["bai"],
             **{row["stage"]: row["state"] for row in s["stages"] if row["stage"].startswith("merge")}}
            for s in summaries]
    create_table_artifact(rows, key="bai-sweep", description="alpha sweep: one BAI merge per value")
    return summaries
