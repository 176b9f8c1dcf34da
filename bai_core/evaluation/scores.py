"""lm-eval's results as bai's flat table: one row per suite task (its primary metric, standard error, examples,
share of finished answers, mean answer length), the paper's Overall (the unweighted mean of the primary metrics)
and the per-category means beside it."""

from __future__ import annotations

from statistics import mean

from bai_core.errors import BaiError
from bai_core.evaluation.catalog import SuiteTask
from bai_core.evaluation.harness import Generations


def _leaves(name: str, group_subtasks: dict) -> list[str]:
    """A task's leaf tasks: itself, or every task under a group (groups nest)."""
    if name not in group_subtasks:
        return [name]
    return [leaf for sub in group_subtasks[name] for leaf in _leaves(sub, group_subtasks)]


def primary_metric(task: SuiteTask, reported: dict) -> str:
    """The task's primary metric key ("<metric>,<filter>"): the catalog's, or the first lm-eval reports for it."""
    if task.metric is not None:
        if task.metric not in reported:
            raise BaiError(f"lm-eval reported no {task.metric} for {task.task} (it reported: "
                           f"{', '.join(k for k in reported if ',' in k)})")
        return task.metric
    for key, value in reported.items():
        if "," in key and "_stderr," not in key and isinstance(value, (int, float)):
            return key
    raise BaiError(f"lm-eval reported no metric for {task.task}")


def task_rows(tasks: list[SuiteTask], results: dict, generations: Generations) -> list[dict]:
    rows = []
    groups = results.get("group_subtasks", {})
    for task in tasks:
        reported = results["results"].get(task.task) or results.get("groups", {}).get(task.task)
        if reported is None:
            raise BaiError(f"lm-eval returned no results for {task.task}")
        metric = primary_metric(task, reported)
        name, _, filter_name = metric.partition(",")
        stderr = reported.get(f"{name}_stderr,{filter_name}")
        leaves = _leaves(task.task, groups)
        tokens = [n for leaf in leaves for n in generations.tokens.get(leaf, [])]
        finished = [f for leaf in leaves for f in generations.finished.get(leaf, [])]
        rows.append({
            "task": task.task, "stands_for": task.stands_for, "category": task.category, "metric": metric,
            # lm-eval's own figures, unrounded: they read the same as its results file (displays round them)
            "score": float(reported[metric]),
            "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
            "examples": sum(results.get("n-samples", {}).get(leaf, {}).get("effective", 0) for leaf in leaves),
            # loglikelihood tasks generate nothing: no length, no finished share
            "finished_share": round(sum(finished) / len(finished), 4) if finished else None,
            "mean_answer_tokens": round(float(mean(tokens)), 1) if tokens else None,
        })
    return rows


def summary(rows: list[dict]) -> dict:
    """Overall (unweighted mean of primary metrics), per-category means, and the generations' length and finish."""
    categories: dict[str, list[float]] = {}
    for row in rows:
        categories.setdefault(row["category"], []).append(row["score"])
    generated = [row for row in rows if row["mean_answer_tokens"] is not None]
    weights = sum(row["examples"] for row in generated)
    return {
        "overall": mean(row["score"] for row in rows),  # unrounded, as the scores are: displays round
        "categories": {name: mean(scores) for name, scores in categories.items()},
        # over every generated answer of the suite, so a long task weighs by its answers
        "finished_share": round(sum(r["finished_share"] * r["examples"] for r in generated) / weights, 4)
        if weights else None,
        "mean_answer_tokens": round(sum(r["mean_answer_tokens"] * r["examples"] for r in generated) / weights, 1)
        if weights else None,
    }
