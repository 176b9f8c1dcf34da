"""A tuning study's trials as a Prefect flow: Optuna asks for `tune.workers` points at a time, one trial task each,
run at once by the flow's task runner (a Dask LocalCluster of that many processes, or the user's Dask scheduler at
`tune.cluster`; with one worker, one after another in this process), then told their values in trial order, so the
study does not depend on which trial finished first."""

from __future__ import annotations

import time

from prefect import flow
from prefect.context import FlowRunContext

from bai.tasks.tune import tune_pilot, tune_trial
from bai_core import progress
from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.tune.study import Study


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
    """Every trial's outcome in order ({"trial", "state", "seconds", "result", "pilots", "pruned_at", "value"} or,
    for the one that failed, {"trial", "error"}) and the best point.

    With pilots, a batch of trials goes rung by rung: all merged and scored, then the pilots of those the pruner
    keeps, and so on; each rung's values are reported in trial order, so the pruner's choices do not depend on which
    trial finished first."""
    _wait_for_workers(config)
    tune = config.tune
    rungs = tune.pilots.rungs if tune.pilots else 0
    study = Study(tune, {"w": config.merge.instruct_weight, "alpha": config.merge.alpha})
    outcomes, remaining = [], tune.trials
    while remaining > 0:
        points = [study.ask() for _ in range(min(tune.workers, remaining))]
        remaining -= len(points)
        batch = {}
        for point, (state, seconds, result) in zip(points, _run_at_once(
                [(f"trial-{p.number}", tune_trial, (p.number, p.w, p.alpha, refs, config, prepared)) for p in points])):
            if result is None:
                return {"outcomes": [*outcomes, {"trial": point.number, "error": state}], "best": None}
            batch[point.number] = {"trial": point.number, "state": state, "seconds": seconds, "result": result,
                                   "pilots": [], "pruned_at": None, "value": result["value"]}
        alive = [p for p in points if rungs and _goes_on(study, p, 0, batch[p.number])]
        for rung in range(1, rungs + 1):
            runs = _run_at_once([(f"trial-{p.number}-pilot-{rung}", tune_pilot,
                                  (p.number, rung, batch[p.number]["result"],
                                   (batch[p.number]["pilots"] or [None])[-1], refs, config, prepared))
                                 for p in alive])
            for point, (state, seconds, result) in zip(alive, runs):
                if result is None:
                    return {"outcomes": [*outcomes, {"trial": point.number, "error": f"pilot {rung}: {state}"}],
                            "best": None}
                batch[point.number]["pilots"].append({**result, "state": state, "seconds": seconds})
                batch[point.number]["value"] = result["value"]
            alive = [p for p in alive if rung == rungs or _goes_on(study, p, rung, batch[p.number])]
        for point in points:
            if point in alive or not rungs:
                study.tell(point, batch[point.number]["value"])
            else:
                study.tell_pruned(point)
            outcomes.append(batch[point.number])
    best = study.best
    return {"outcomes": outcomes, "best": {"trial": best.number, "w": best.w, "alpha": best.alpha}}


def _goes_on(study: Study, point, rung: int, outcome: dict) -> bool:
    if study.goes_on(point, rung, outcome["value"]):
        return True
    outcome["pruned_at"] = rung
    return False


def _run_at_once(calls: list[tuple[str, object, tuple]]) -> list[tuple[str, float, dict | None]]:
    """Submit every (row name, task, arguments) at once, wait for each in order: (state name, seconds, result), or
    (the error, 0, None) for one that failed (the rest are not waited for)."""
    started = time.perf_counter()
    futures = []
    for name, task, arguments in calls:
        progress.stage_started(name)
        futures.append(task.submit(*arguments))
    done = []
    for (name, _, _), future in zip(calls, futures):
        future.wait()
        state = future.state
        if not state.is_completed():
            error = state.result(raise_on_failure=False)
            done.append((str(error) if isinstance(error, BaseException) else state.message or state.name, 0.0, None))
            return done
        result = state.result()
        # A cached trial took none of its own time; one scored here, its own (trials at once share the wall).
        seconds = result["seconds"] if state.name == "Completed" else round(time.perf_counter() - started, 3)
        progress.stage_finished(name, state.name, seconds, trial_line(result))
        done.append((state.name, seconds, result))
    return done
