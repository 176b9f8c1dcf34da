"""Runs at once on Dask, through prefect-dask: the task runner a `Fanout` asks for, and the wait for its workers.
Tune's trials (flows/trials.py), `bai sweep` points and `bai compare` rows (flows/fanout.py) all go this one way."""

from __future__ import annotations

from prefect.context import FlowRunContext

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
