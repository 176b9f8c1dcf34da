"""The pipeline's `tune:` section: which merge weights are searched (or fixed), how many trials, the sampler, and
the objective, scored on a dev split, never on the eval split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bai_core.fanout import Fanout
from bai_core.merge.groups import GroupName
from bai_core.rl.config import TrainSettings
from bai_core.settings import Strict


class Bounds(Strict):
    """A weight searched between `low` and `high` (both in [0, 1]); equal bounds fix it."""

    low: float = Field(0.0, ge=0, le=1)
    high: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.low > self.high:
            raise ValueError(f"low {self.low:g} is above high {self.high:g}: the range is empty")
        return self

    @property
    def fixed(self) -> bool:
        return self.low == self.high


class PilotSettings(Strict):
    """RL pilots as a fidelity: a trial that survives a rung goes on to the next, a few more steps of GRPO from its
    merge, scored on the dev split after each. Rung 0 is the merge itself; rung k the first `steps * keep**(k-1)`
    steps of the train section's run (its schedule unchanged). Optuna's SuccessiveHalvingPruner keeps the best
    1/`keep` of the trials at each rung."""

    steps: int = Field(10, gt=0, description="RL steps of the first pilot; each next rung trains `keep` times as "
                                             "many in all (10, 20, 40 with keep 2 and 3 rungs).")
    rungs: int = Field(3, gt=0, description="Pilot rungs after the merge's own score.")
    keep: int = Field(2, ge=2, description="Successive halving's reduction factor: about 1 in `keep` trials goes on "
                                           "at each rung.")
    detector_penalty: float = Field(1.0, ge=0, description="Taken off a pilot's value when a stability detector "
                                                           "fired in it (the trial is marked).")
    train: TrainSettings | None = Field(None, description="The pilots' RL run (default: the config's train "
                                                          "section); a pilot is its first steps, from the trial's "
                                                          "merge, in one process, with nothing aborting it.")

    @model_validator(mode="after")
    def _rungs_fit(self):
        if self.train is not None and self.steps_at(self.rungs) > self.train.steps:
            raise ValueError(f"the last rung trains {self.steps_at(self.rungs)} steps, more than the run's "
                             f"{self.train.steps} (train.steps): fewer rungs, or fewer steps in the first")
        return self

    def steps_at(self, rung: int) -> int:
        """RL steps at rung `rung` (1 .. rungs); rung 0 is the merge, 0 steps."""
        return 0 if rung == 0 else self.steps * self.keep ** (rung - 1)


class TuneSettings(Strict):
    """`bai tune`: an Optuna study over the merge weights, each trial a merge scored on the dev split."""

    w: Bounds = Field(Bounds(), description="The instruct model's weight in stage 1: bounds {low, high}, or "
                                                    "a number to fix it.")
    alpha: Bounds = Field(Bounds(), description="The pretrained model's weight in stage 2: bounds, or a "
                                                        "number to fix it.")
    groups: list[GroupName] = Field([], description="Tensor groups (embeddings, attention, mlp, norms, lm_head) "
                                                    "that get their own w and alpha, searched within the same bounds "
                                                    "(merge.groups in the pick).")
    trials: int = Field(16, gt=0, description="Trials of the study (merges scored).")
    sampler: Literal["tpe", "cmaes"] = Field("tpe", description="Optuna's sampler: tpe (TPESampler) or cmaes "
                                                                "(CmaEsSampler).")
    seed: int = Field(0, description="The sampler's seed: the same seed and trials give the same study.")
    suite: str | list[str] | None = Field(None, description="What a trial is scored on: a dev suite (default: the "
                                                            "evaluate suite's dev split, e.g. demo-dev), or lm-eval "
                                                            "task names. Never the eval suite.")
    metric: str = Field("overall", description="The score the objective takes: overall, or one task's.")
    finished_weight: float = Field(0.0, ge=0, description="Plus this times the share of finished answers (think "
                                                          "block closed, ended before the token limit).")
    length_weight: float = Field(0.0, ge=0, description="Minus this times how far the mean answer length is "
                                                        "from the reasoning member's, relative to it (|L/L_r - 1|):"
                                                        " a merge that answers much shorter or longer pays.")
    pilots: PilotSettings | None = Field(None, description="RL pilots as a fidelity (needs a train section): "
                                                           "surviving trials get short GRPO runs, pruned by "
                                                           "successive halving.")
    workers: int = Field(1, gt=0, description="Trials at once: above 1, on a Dask LocalCluster of that many "
                                              "processes here, or on `cluster`. The study asks for that many points "
                                              "at a time, so it depends on workers as on its seed.")
    cluster: str | None = Field(None, description="A Dask scheduler's address (tcp://host:8786) to run the trials "
                                                  "on, `workers` at a time.")

    @field_validator("w", "alpha", mode="before")
    @classmethod
    def _number_fixes(cls, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not 0 <= value <= 1:
                raise ValueError(f"{value} is outside [0, 1]")
            return {"low": value, "high": value}
        return value

    @model_validator(mode="after")
    def _something_to_search(self):
        if self.w.fixed and self.alpha.fixed:
            raise ValueError("w and alpha are both fixed: nothing to search (give bounds to one of them)")
        return self

    @property
    def fanout(self) -> Fanout:
        return Fanout(workers=self.workers, cluster=self.cluster)

    @property
    def searched(self) -> dict[str, Bounds]:
        """The study's parameters: w and alpha (those not fixed), and per group in `groups` its own (w.attention)."""
        base = {name: bounds for name, bounds in (("w", self.w), ("alpha", self.alpha)) if not bounds.fixed}
        return {**base, **{f"{name}.{group}": bounds for group in self.groups for name, bounds in base.items()}}
