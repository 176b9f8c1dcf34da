"""A tuning study's trials as a Prefect flow: Optuna asks for `tune.workers` points at a time, one trial task each
(and, with pilots, one task per RL pilot rung of the trials the pruner keeps), run at once by the flow's task runner
(a Dask LocalCluster of that many processes, or the user's Dask scheduler at `tune.cluster`; with one worker, one
after another in this process), then told their values in trial order, so the study does not depend on which trial
finished first (bai_core.tune.study.run_study)."""

from __future__ import annotations

import time

from prefect import flow
from prefect.context import FlowRunContext

from bai.tasks.tune import tune_pilot, tune_trial
from bai_core import progress
from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.tune.study import Done, Point, TrialFailed, run_study


def trial_line(result: dict) -> str:
    """A finished trial's or pilot's progress line."""
    if "rung" in result:
        fired = f" ({', '.join(result['fired'])} fired: penalised)" if result["fired"] else ""
        return f"{result['steps']} RL steps: {result['value']:.3f}{fired}"
    return f"w {result['w']:.3f}, alpha {result['alpha']:.3f}: {result['value']:.3f}"


def task_runner(config: PipelineConfig):
    """Where the trials run: Dask when the study runs several at once or names a cluster, else the default."""
    tune = config.tune
    if tune.workers == 1 and tune.cluster is None:
        return None
    from prefect_dask import DaskTaskRunner

    if tune.cluster is not None:
        return DaskTaskRunner(address=tune.cluster)
    # One process per trial at a time, one thread each, and torch's kernels on one core each: without that, every
    # worker's torch takes all the cores and the trials fight over them.
    single = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    return DaskTaskRunner(cluster_kwargs={"n_workers": tune.workers, "threads_per_worker": 1, "processes": True,
                                          "env": single})


def _wait_for_workers(config: PipelineConfig, timeout_s: float = 300) -> None:
    """On Dask, the first points go out once the cluster's workers are there (all of a local cluster's, at least
    one of the user's): submitted earlier, they would queue on the first worker up and run one after another."""
    runner = FlowRunContext.get().task_runner
    if not hasattr(runner, "client"):
        return
    wanted = config.tune.workers if config.tune.cluster is None else 1
    try:
        runner.client.wait_for_workers(wanted, timeout=timeout_s)
    except TimeoutError:
        raise BaiError(f"tune.workers: fewer than {wanted} Dask workers came up in {timeout_s:.0f} s") from None


@flow(name="bai-tune-trials", flow_run_name="{config.name}-trials")
def tune_trials(config: PipelineConfig, refs: dict, prepared: dict) -> dict:
    """The study (bai_core.tune.study.run_study), its trials and pilots as tasks on this flow's task runner."""
    _wait_for_workers(config)

    def score(points: list[Point]) -> list[Done]:
        return _run_at_once([(p.number, f"trial-{p.number}", tune_trial, (p.number, p.w, p.alpha, refs, config,
                                                                         prepared)) for p in points])

    def pilot(rung: int, items: list[tuple[Point, dict, dict | None]]) -> list[Done]:
        return _run_at_once([(p.number, f"trial-{p.number}-pilot-{rung}", tune_pilot,
                              (p.number, rung, trial, earlier, refs, config, prepared)) for p, trial, earlier in items])

    return run_study(config.tune, {"w": config.merge.instruct_weight, "alpha": config.merge.alpha}, score, pilot)


def _run_at_once(calls: list[tuple[int, str, object, tuple]]) -> list[Done]:
    """Submit every (trial, row name, task, arguments) at once, wait for each in order; one that failed raises
    TrialFailed (the rest are not waited for)."""
    started = time.perf_counter()
    futures = []
    for _, name, task, arguments in calls:
        progress.stage_started(name)
        futures.append(task.submit(*arguments))
    done = []
    for (trial, name, _, _), future in zip(calls, futures):
        future.wait()
        state = future.state
        if not state.is_completed():
            error = state.result(raise_on_failure=False)
            message = str(error) if isinstance(error, BaseException) else state.message or state.name
            raise TrialFailed(trial, message if name == f"trial-{trial}" else f"{name}: {message}")
        result = state.result()
        # A cached trial took none of its own time; one scored here, its own (trials at once share the wall).
        seconds = result["seconds"] if state.name == "Completed" else round(time.perf_counter() - started, 3)
        progress.stage_finished(name, state.name, seconds, trial_line(result))
        done.append((state.name, seconds, result))
    return done
