"""The suites as lm-eval tasks: found by lm-eval's registry, metrics lm-eval defines, the demo one scored by lm-eval
itself, offline."""

from __future__ import annotations

import importlib.util

import pytest

from bai_core.evaluation import SUITES_DIR


def task_utils():
    """The suite's Python, loaded by path as lm-eval loads it (`!function utils.<name>`)."""
    spec = importlib.util.spec_from_file_location("bai_demo_utils", SUITES_DIR / "bai_demo" / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("response, answer", [
    ("<think>7+5=12, 3+0+1=4. 37+5=41.</think>42", "42"),  # the trace's numbers are not the answer
    ("<think>7+5=12, 3+0+1=4. 37+5=4", "[no answer]"),    # cut off inside the think block
    ("37+5=42", "42"),
    ("Ann has 42", "42"),
    ("42", "42"),                                        # what is left when lm-eval strips the block itself
    ("no idea", "[no answer]"),
])
def test_final_number_drops_the_think_block(response, answer):
    assert task_utils().final_numbers([[response]], None) == [[answer]]


def test_the_split_is_the_familys_eval_split():
    from bai_core.demo.arithmetic import problems
    from bai_core.demo.sizes import SIZES

    spec = SIZES["test"]
    rows = task_utils().eval_split(size="test", seed=3)["test"]
    expected = problems("eval", 3, spec.a_range, spec.b_range, spec.eval_problems)
    assert [(r["question"], r["answer"]) for r in rows] == [(p.question, str(p.answer)) for p in expected]
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        task_utils().eval_split(size="huge")


def test_lm_eval_scores_the_demo_family_as_its_own_evaluator_does(demo_family):
    """lm-eval (HFLM, chat template, greedy, think block stripped by lm-eval) gives the family report's accuracy."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from bai_core.demo.sizes import SIZES

    manager = TaskManager(include_path=str(SUITES_DIR), metadata={"size": "test", "seed": 0})
    assert "bai_demo" in manager.all_tasks
    for member in ("instruct", "reasoning"):
        model = HFLM(pretrained=str(demo_family.root / member), batch_size=64, device="cpu",
                     think_end_token="</think>")
        results = lm_eval.simple_evaluate(model=model, tasks=["bai_demo"], task_manager=manager,
                                          apply_chat_template=True, log_samples=True)
        score = results["results"]["bai_demo"]["exact_match,final-number"]
        samples = results["samples"]["bai_demo"]
        assert len(samples) == SIZES["test"].eval_problems
        if member == "reasoning":  # lm-eval removed the think block before the filter saw the answer
            assert all("<think>" not in s["resps"][0][0] for s in samples)
        assert score == pytest.approx(demo_family.report.models[member]["accuracy"], abs=1.5 / len(samples))


def task_config(path) -> dict:
    """A task's YAML as lm-eval reads it, offline: `include`s merged under it, `!function x.name` kept as "name"."""
    from pathlib import Path

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node).split(".")[-1])
    path = Path(path)
    config = yaml.load(path.read_text(), Loader=Loader)
    if "include" in config:
        config = {**task_config(path.parent / config.pop("include")), **config}
    return config


def test_every_suite_task_and_metric_is_lm_evals_own():
    """Each named suite's tasks exist in lm-eval's registry (offline), and each primary metric is one the task's
    definition computes, under a filter it defines: a typo would otherwise surface only on a GPU machine, hours in."""
    from lm_eval.tasks import TaskManager

    from bai_core.evaluation.catalog import SUITES

    manager = TaskManager(include_path=str(SUITES_DIR))
    for suite, tasks in SUITES.items():
        for entry in tasks:
            assert entry.task in manager.all_tasks, f"{suite}: {entry.task} is not an lm-eval task"
            config = task_config(manager.task_index[entry.task].yaml_path)
            metric, filter_name = entry.metric.split(",")
            metrics = config.get("aggregate_metric_list") or config.get("metric_list")
            assert metric in [m["metric"] for m in metrics], (entry.task, metric, metrics)
            if "aggregate_metric_list" in config:  # a group: the filter is named in its aggregate
                assert all(m.get("filter_list", "none") == filter_name for m in metrics if m["metric"] == metric)
            else:
                assert filter_name in [f["name"] for f in config.get("filter_list", [])] or (
                    filter_name == "none" and "filter_list" not in config), (entry.task, filter_name)
