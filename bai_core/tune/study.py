"""The study: Optuna's ask-and-tell over (w, alpha), one cached trial per point. Trials are scored on a dev split,
never on the eval split (`dev_settings` refuses a suite that shares a task with `evaluate.suite`).

The sampler is seeded, and a trial's value comes back from the store when it was scored before, so a rerun (or a
study resumed after a kill) asks for the same points, finds each finished trial published, and continues to the same
best."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bai_core import plugins
from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.evaluation import harness
from bai_core.evaluation.config import EvaluateSettings
from bai_core.tune.config import TuneSettings


def baseline_run(config: PipelineConfig) -> PipelineConfig:
    """The same run without the study: the config's own merge weights, scored on the eval split beside the pick."""
    return PipelineConfig.model_validate({**config.model_dump(mode="json"), "name": f"{config.name}-default",
                                          "tune": None})


def dev_settings(config: PipelineConfig) -> EvaluateSettings:
    """What a trial is scored on: `tune.suite`, else the evaluate suite's dev split (demo -> demo-dev), with the
    evaluate section's other settings. Checked before anything is merged: a dev suite exists, shares no task with
    the eval suite, and has the objective's metric."""
    tune = config.tune
    base = config.evaluate or EvaluateSettings()
    suite = tune.suite
    if suite is None:
        names = base.task_names
        named = plugins.suite(names[0]) if len(names) == 1 else None
        if named is None or named.dev is None:
            raise BaiError(f"tune.suite: bai knows no dev split of the evaluate suite ({', '.join(names)}); name "
                           "the suite or lm-eval tasks to score trials on (a dev or validation split, never the "
                           "eval split)")
        suite = named.dev
    dev = EvaluateSettings.model_validate({**base.model_dump(mode="json"), "suite": suite, "models": None,
                                           "deployment": None})
    dev_tasks = [task.task for task in harness.suite_tasks(dev)]
    if config.evaluate is not None:
        shared = sorted(set(dev_tasks) & {task.task for task in harness.suite_tasks(config.evaluate)})
        if shared:
            raise BaiError(f"tune.suite: {', '.join(shared)} is also what evaluate.suite scores: the weights would "
                           "be chosen on the eval split; score trials on a dev split (e.g. demo-dev)")
    tune.fanout.check("tune.cluster")
    if tune.metric not in ("overall", *dev_tasks):
        raise BaiError(f"tune.metric: {tune.metric!r} is not a score of the dev suite (overall, or one of "
                       f"{', '.join(dev_tasks)})")
    return dev


@dataclass(frozen=True)
class Point:
    number: int
    w: float
    alpha: float
    groups: dict = field(default_factory=dict)  # merge.groups: {group: {instruct_weight, alpha}} when searched

    @staticmethod
    def of(number: int, settings: TuneSettings, params: dict) -> Point:
        values = {"w": settings.w.low, "alpha": settings.alpha.low, **params}
        groups = {group: {"instruct_weight": values.get(f"w.{group}", values["w"]),
                          "alpha": values.get(f"alpha.{group}", values["alpha"])} for group in settings.groups}
        return Point(number, values["w"], values["alpha"], groups)


class Study:
    """Ask for a point, tell its value; the best so far. Fixed weights are not searched. Trial 0 is the config's
    own merge weights (the paper's default unless the config says otherwise), so the study measures what it beats."""

    def __init__(self, settings: TuneSettings, start: dict[str, float] | None = None):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # bai reports each trial itself
        self.settings = settings
        sampler = (optuna.samplers.TPESampler(seed=settings.seed) if settings.sampler == "tpe"
                   else optuna.samplers.CmaEsSampler(seed=settings.seed))
        # With pilots, rung k is reported at step keep**k, where Optuna's (asynchronous) successive halving compares
        # it with the other trials' values at that rung and keeps about 1 in `keep`.
        pilots = settings.pilots
        pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=pilots.keep,
                                                         min_early_stopping_rate=0) if pilots
                  else optuna.pruners.NopPruner())
        self.study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
        self.distributions = {name: optuna.distributions.FloatDistribution(bounds.low, bounds.high)
                              for name, bounds in settings.searched.items()}
        self._asked = {}
        if start:
            self.study.enqueue_trial({name: min(max(start[name.split(".")[0]], bounds.low), bounds.high)
                                      for name, bounds in settings.searched.items()})

    def ask(self) -> Point:
        trial = self.study.ask(self.distributions)
        self._asked[trial.number] = trial
        return Point.of(trial.number, self.settings, trial.params)

    def goes_on(self, point: Point, rung: int, value: float) -> bool:
        """Report the trial's value at `rung`; whether the pruner lets it go on to the next rung."""
        trial = self._asked[point.number]
        trial.report(value, self.settings.pilots.keep ** rung)
        return not trial.should_prune()

    def tell(self, point: Point, value: float) -> None:
        self.study.tell(self._asked.pop(point.number), value)

    def tell_pruned(self, point: Point) -> None:
        """The trial stopped at a rung: its value there is its last report (not a candidate for the best)."""
        import optuna

        self.study.tell(self._asked.pop(point.number), state=optuna.trial.TrialState.PRUNED)

    @property
    def best(self) -> Point:
        trial = self.study.best_trial
        return Point.of(trial.number, self.settings, trial.params)


class TrialFailed(Exception):
    """A trial (or one of its pilots) failed: the study stops there."""

    def __init__(self, trial: int, message: str):
        super().__init__(message)
        self.trial, self.message = trial, message


Done = tuple[str, float, dict]  # (how it was had: a state name, seconds, the TrialResult or PilotResult as JSON)


def run_study(settings: TuneSettings, start: dict[str, float], score: Callable[[list[Point]], list[Done]],
              pilot: Callable[[int, list[tuple[Point, dict, dict | None]]], list[Done]]) -> dict:
    """The study, `settings.workers` points at a time: `score(points)` merges and scores them (at once, wherever the
    caller runs them); with pilots, `pilot(rung, [(point, trial, its previous rung or None)])` runs the rung for
    the trials the pruner keeps, rung after rung. Each rung's values are reported in trial order, so the pruner's
    choices do not depend on which trial finished first. Either may raise TrialFailed.

    Returns every trial's outcome in order ({"trial", "state", "seconds", "result", "pilots", "pruned_at", "value"};
    for the one that failed, {"trial", "error"}) and the best point (None after a failure)."""
    rungs = settings.pilots.rungs if settings.pilots else 0
    study = Study(settings, start)
    outcomes, remaining = [], settings.trials
    try:
        while remaining > 0:
            points = [study.ask() for _ in range(min(settings.workers, remaining))]
            remaining -= len(points)
            batch = {point.number: {"trial": point.number, "state": state, "seconds": seconds, "result": result,
                                    "pilots": [], "pruned_at": None, "value": result["value"]}
                     for point, (state, seconds, result) in zip(points, score(points))}

            def goes_on(point: Point, rung: int) -> bool:
                if study.goes_on(point, rung, batch[point.number]["value"]):
                    return True
                batch[point.number]["pruned_at"] = rung
                return False

            alive = [point for point in points if rungs and goes_on(point, 0)]
            for rung in range(1, rungs + 1):
                ran = pilot(rung, [(point, batch[point.number]["result"], (batch[point.number]["pilots"] or [None])[-1])
                                   for point in alive])
                for point, (state, seconds, result) in zip(alive, ran):
                    batch[point.number]["pilots"].append({**result, "state": state, "seconds": seconds})
                    batch[point.number]["value"] = result["value"]
                alive = [point for point in alive if rung == rungs or goes_on(point, rung)]
            for point in points:
                if point in alive or not rungs:
                    study.tell(point, batch[point.number]["value"])
                else:
                    study.tell_pruned(point)
                outcomes.append(batch[point.number])
    except TrialFailed as failed:
        return {"outcomes": [*outcomes, {"trial": failed.trial, "error": failed.message}], "best": None}
    best = study.best
    return {"outcomes": outcomes, "best": {"trial": best.number, "w": best.w, "alpha": best.alpha,
                                           "groups": best.groups}}
