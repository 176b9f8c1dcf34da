"""Pipeline runs at once (`bai sweep` points, `bai compare` rows): each a subflow of a task on the Dask task runner
a `Fanout` asks for (flows/dask_runner.py), the one path tune's trials take too."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from bai.flows.dask_runner import task_runner, wait_for_workers
from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.fanout import Fanout


@task(name="pipeline-run", task_run_name="{point.name}", cache_policy=NO_CACHE, persist_result=False)
def _pipeline_run(point: PipelineConfig) -> dict:
    """One pipeline run, as a subflow of this task, in whichever process (a Dask worker) runs the task."""
    from bai.flows.pipeline import bai_pipeline

    return bai_pipeline(point)


@flow(name="bai-runs-at-once", flow_run_name="{name}-at-once")
def _runs_at_once(name: str, points: list[PipelineConfig], fanout: Fanout) -> list[dict]:
    wait_for_workers(fanout, "--workers")
    futures = [_pipeline_run.submit(point) for point in points]
    outcomes = []
    for future in futures:
        future.wait()
        if future.state.is_completed():
            outcomes.append({"summary": future.state.result()})
        else:
            error = future.state.result(raise_on_failure=False)
            outcomes.append({"error": str(error) if isinstance(error, BaseException) else future.state.name})
    return outcomes


def run_pipelines(name: str, points: list[PipelineConfig], fanout: Fanout | None,
                  stop_at_error: bool = False) -> list[dict]:
    """Each point's pipeline run, in order: {"summary": ...}, or {"error": ...} for one that failed (the others
    still run). One after another as subflows of the calling flow (the first error raised as it is, with
    `stop_at_error`), or, with a concurrent `fanout`, all submitted at once to Dask (a subflow of their own, whose
    tasks each run one pipeline)."""
    from bai.flows.pipeline import bai_pipeline

    if fanout is None or not fanout.concurrent:
        outcomes = []
        for point in points:
            try:
                outcomes.append({"summary": bai_pipeline(point)})
            except BaiError as e:
                if stop_at_error:
                    raise
                outcomes.append({"error": str(e)})
        return outcomes
    return _runs_at_once.with_options(task_runner=task_runner(fanout))(name, points, fanout)
