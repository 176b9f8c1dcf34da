"""The paper's two tables as sets of pipeline runs, each an ordinary PipelineConfig (so every merge, RL run and
evaluation is the pipeline's own cached stage, and a rerun with nothing changed is all cache hits).

- The comparison (Table 1): the same RL settings, budget and suite from different starting points. Paradigm 1 is
  RL from instruct, Paradigm 2 the reasoning model as it is, Paradigm 3 RL from reasoning, BAI RL from M_bai; the
  two ablations the paper lacks start from the pretrained base and from M_sft (stage 1 alone).
- The scored sweep (Table 2): stage 2 at each alpha (stage 1 is shared, so merged once), each M_bai scored, or, with
  `rl_steps`, a short RL pilot per alpha scored after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bai_core.config import PipelineConfig
from bai_core.errors import BaiError


@dataclass(frozen=True)
class Variant:
    row: str          # the table's row label
    start: str        # what it starts from, in words
    init: str | None  # train.init, or None: scored as it is, no RL
    scored: str       # the evaluate stage's model


PARADIGMS = (
    Variant("Paradigm 1", "RL from instruct", "instruct", "actor"),
    Variant("Paradigm 2", "reasoning, no RL", None, "reasoning"),
    Variant("Paradigm 3", "RL from reasoning", "reasoning", "actor"),
    Variant("BAI", "RL from M_bai", "bai", "actor"),
    Variant("ablation: pretrained", "RL from pretrained", "pretrained", "actor"),
    Variant("ablation: M_sft", "RL from M_sft (stage 1 only)", "sft", "actor"),
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _point(config: PipelineConfig, name: str, **update) -> PipelineConfig:
    return PipelineConfig.model_validate({**config.model_dump(mode="json"), "name": name, **update})


def comparison_runs(config: PipelineConfig) -> list[tuple[Variant, PipelineConfig]]:
    """One pipeline config per row: the config's train settings with the row's start, its evaluate settings."""
    if config.train is None or config.evaluate is None:
        raise BaiError("bai compare: the config needs `train:` (the RL settings every row shares) and `evaluate:` "
                       "(the suite every row is scored on)")
    runs = []
    for variant in PARADIGMS:
        # an RL row also scores its starting point, so the table shows what RL did to it
        scored = [variant.scored] if variant.init is None else [variant.init, variant.scored]
        evaluate = config.evaluate.model_copy(update={"models": scored}).model_dump(mode="json")
        train = None if variant.init is None else \
            config.train.model_copy(update={"init": variant.init}).model_dump(mode="json")
        runs.append((variant, _point(config, f"{config.name}-{_slug(variant.row)}", train=train, evaluate=evaluate)))
    return runs


def parse_alphas(text: str) -> list[float]:
    """`0.1,0.2,0.5` -> [0.1, 0.2, 0.5]; each in [0, 1]."""
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise BaiError("--alphas: give at least one value, e.g. --alphas 0.1,0.2,0.5,0.7,0.9")
    alphas = []
    for value in values:
        try:
            alpha = float(value)
        except ValueError:
            raise BaiError(f"--alphas: {value!r} is not a number") from None
        if not 0 <= alpha <= 1:
            raise BaiError(f"--alphas: {value} is outside [0, 1] (alpha is the pretrained model's weight)")
        alphas.append(alpha)
    return alphas


def sweep_runs(config: PipelineConfig, alphas: list[float], rl_steps: int | None = None) -> list[PipelineConfig]:
    """One pipeline config per alpha, M_bai scored with the config's evaluate settings (unscored without them); with
    `rl_steps`, the config's train settings cut to that many steps (a pilot) and the actor scored after it."""
    if rl_steps is not None and rl_steps <= 0:
        raise BaiError(f"--rl-steps: {rl_steps} is not a positive number of steps")
    if rl_steps is not None and config.train is None:
        raise BaiError("--rl-steps: the config has no `train:` section to take the pilots' RL settings from")
    evaluate = None
    if config.evaluate is not None:
        scored = ["bai", "actor"] if rl_steps else ["bai"]  # a pilot's row also shows M_bai before RL
        evaluate = config.evaluate.model_copy(update={"models": scored}).model_dump(mode="json")
    train = None if rl_steps is None else config.train.model_copy(update={"steps": rl_steps}).model_dump(mode="json")
    return [_point(config, f"{config.name}-alpha{alpha:g}",
                   merge=config.merge.model_copy(update={"alpha": alpha}).model_dump(mode="json"), train=train,
                   evaluate=evaluate)
            for alpha in alphas]


def check_objective(config: PipelineConfig, objective: str) -> None:
    """Refuse, before any point runs, an objective the sweep's table will not have: `overall` or one of the suite's
    tasks (a list of lm-eval task names is checked once scored, when lm-eval has said what its rows are)."""
    if config.evaluate is None or objective == "overall":
        return
    from bai_core.evaluation.harness import suite_tasks

    tasks = suite_tasks(config.evaluate)
    if any(task.metric is None for task in tasks):
        return
    names = [task.task for task in tasks]
    if objective not in names:
        import difflib

        close = difflib.get_close_matches(objective, ["overall", *names], n=1)
        raise BaiError(f"--objective {objective!r}: not a score of this sweep (overall, or a task of its suite: "
                       f"{', '.join(names)})" + (f"; did you mean {close[0]!r}?" if close else ""))
