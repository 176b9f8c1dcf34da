"""Runs at once on Dask, through prefect-dask: the task runner a `Fanout` asks for, and the wait for its workers.
Tune's trials, `bai sweep` points and `bai compare` rows all go this one way."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.fanout import Fanout


def task_runner(fanout: Fanout):
    """Dask when several run at once or a cluster is named; None (Prefect's default) otherwise."""
    if not fanout.concurrent:
        return None
    from prefect_dask import DaskTaskRunner

    if fanout.cluster is not None:
        return DaskTaskRunner(address=fanout.cluster)
    # One process per run at a time, one thread each, and torch's kernels on one core each: without that, every
    # worker's torch takes all the cores and the runs fight over them.
    single = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    return DaskTaskRunner(cluster_kwargs={"n_workers": fanout.workers, "threads_per_worker": 1, "processes": True,
                                          "env": single})


def wait_for_workers(fanout: Fanout, what: str, timeout_s: float = 300) -> None:
    """On Dask, the first runs go out once the cluster's workers are there (all of a local cluster's, at least one
    of the user's): submitted earlier, they would queue on the first worker up and run one after another."""
    runner = FlowRunContext.get().task_runner
    if not hasattr(runner, "client"):
        return
    wanted = fanout.workers if fanout.cluster is None else 1
    try:
        runner.client.wait_for_workers(wanted, timeout=timeout_s)
    except TimeoutError:
        raise BaiError(f"{what}: fewer than {wanted} Dask workers came up in {timeout_s:.0f} s") from None


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
