"""A tuning study's trials as a Prefect flow: Optuna asks for `tune.workers` points at a time, one trial task each
(and, with pilots, one task per RL pilot rung of the trials the pruner keeps), run at once by the flow's task runner
(a Dask LocalCluster of that many processes, or the user's Dask scheduler at `tune.cluster`; with one worker, one
after another in this process), then told their values in trial order, so the study does not depend on which trial
finished first (bai_core.tune.study.run_study)."""

from __future__ import annotations

import time

from prefect import flow

from bai.flows.dask_runner import wait_for_workers
from bai.tasks.tune import tune_pilot, tune_trial
from bai_core import progress
from bai_core.config import PipelineConfig
from bai_core.tune.study import Done, Point, TrialFailed, run_study


def trial_line(result: dict) -> str:
    """A finished trial's or pilot's progress line."""
    if "rung" in result:
        fired = f" ({', '.join(result['fired'])} fired: penalised)" if result["fired"] else ""
        return f"{result['steps']} RL steps: {result['value']:.3f}{fired}"
    return f"w {result['w']:.3f}, alpha {result['alpha']:.3f}: {result['value']:.3f}"


@flow(name="bai-tune-trials", flow_run_name="{config.name}-trials")
def tune_trials(config: PipelineConfig, refs: dict, prepared: dict) -> dict:
    """The study (bai_core.tune.study.run_study), its trials and pilots as tasks on this flow's task runner."""
    wait_for_workers(config.tune.fanout, "tune.workers")

    def score(points: list[Point]) -> list[Done]:
        return _run_at_once([(p.number, f"trial-{p.number}", tune_trial, (p.number, p.w, p.alpha, refs, config,
                                                                         prepared, p.groups)) for p in points])

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
