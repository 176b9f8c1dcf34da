"""Scoring with lm-eval: the suites as lm-eval tasks (found by its registry, metrics it defines), `bai eval` on the
test family (the family report's figures, the same score through the lm-eval command line it prints, cached), the
overall score, and bad input refused in one line before any model loads."""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bai_core.evaluation.harness import include_paths

DEMO_SUITE = Path(__file__).parents[1] / "bai_core" / "demo" / "suites"


def task_utils():
    """The suite's Python, loaded by path as lm-eval loads it (`!function utils.<name>`)."""
    spec = importlib.util.spec_from_file_location("bai_demo_utils", DEMO_SUITE / "bai_demo" / "utils.py")
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


def bai_eval(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bai.cli", "eval", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_bai_eval_gives_the_family_reports_figures_and_lm_evals_cli_the_same_score(demo_family, tmp_path):
    """`bai eval` (lm-eval's HFLM, chat template, greedy, think block stripped by lm-eval) gives the family report's
    accuracy and answer length; the `lm-eval run` line it prints gives the same score; a rerun reads the store."""
    from bai_core.demo.sizes import SIZES

    member = demo_family.root / "reasoning"
    proc = bai_eval(str(member), "--store", str(tmp_path / "store"), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = json.loads(proc.stdout)
    report = demo_family.report.models["reasoning"]
    [row] = ref["rows"]
    assert row["task"] == "bai_demo" and row["metric"] == "exact_match,final-number"
    assert row["examples"] == SIZES["test"].eval_problems and ref["metadata"] == {"size": "test", "seed": 0}
    assert row["score"] == ref["overall"] == pytest.approx(report["accuracy"], abs=1.5 / row["examples"])
    assert row["mean_answer_tokens"] == pytest.approx(report["mean_answer_tokens"], abs=0.2)  # think block counted
    assert 0 <= row["finished_share"] <= 1 and ref.pop("how") == "built"
    folder = Path(ref["uri"].removeprefix("file://"))
    samples = [json.loads(line) for line in (folder / "samples_bai_demo.jsonl").read_text().splitlines()]
    assert len(samples) == row["examples"]
    assert all("<think>" not in s["resps"][0][0] for s in samples)  # lm-eval dropped it before the filter
    assert {"results.json", "scores.json", "scores.csv"} <= {p.name for p in folder.iterdir()}

    command = shlex.split(ref["lm_eval_command"])
    assert command[:2] == ["lm-eval", "run"]
    out = tmp_path / "lm-eval-out"
    cli = subprocess.run([str(Path(sys.executable).parent / "lm-eval"), *command[1:], "--output_path", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    [results] = out.rglob("results_*.json")
    # lm-eval's figure as lm-eval wrote it, and bai's, unrounded both: the same number
    assert json.loads(results.read_text())["results"]["bai_demo"]["exact_match,final-number"] == row["score"]

    again = bai_eval(str(member), "--store", str(tmp_path / "store"), "--json")
    assert json.loads(again.stdout) == {**ref, "how": "cached"}
    plain = bai_eval(str(member), "--store", str(tmp_path / "store"))  # without --json: the table, then the line
    assert plain.stdout.splitlines()[-1] == f"the same scores from lm-eval's own CLI: {ref['lm_eval_command']}"
    # lm-eval's advice to pass the demo task's kwargs with --metadata (bai does) stays out of the user's way
    assert "Custom kwargs" not in proc.stderr + plain.stderr


def test_overall_and_categories_are_unweighted_means_and_groups_roll_up():
    """Overall = mean of each task's primary metric (not of examples); a group's generations count for it."""
    from bai_core.evaluation.catalog import SuiteTask
    from bai_core.evaluation.harness import Generations
    from bai_core.evaluation.scores import summary, task_rows

    results = {"results": {"grp": {"exact_match,strict": 0.5}, "a": {}, "b": {},
                           "mc": {"acc,none": 0.9, "acc_stderr,none": 0.01, "alias": "mc"}},
               "group_subtasks": {"grp": ["a", "b"]},
               "n-samples": {"a": {"effective": 10}, "b": {"effective": 30}, "mc": {"effective": 100}}}
    generations = Generations()
    generations.tokens.update({"a": [10] * 10, "b": [30] * 30})
    generations.finished.update({"a": [True] * 10, "b": [False] * 30})
    tasks = [SuiteTask("grp", "exact_match,strict", "math", "G"), SuiteTask("mc", None, "custom", "mc")]
    rows = task_rows(tasks, results, generations)
    assert [(r["task"], r["metric"], r["examples"]) for r in rows] == [("grp", "exact_match,strict", 40),
                                                                       ("mc", "acc,none", 100)]
    assert rows[0]["mean_answer_tokens"] == 25.0 and rows[0]["finished_share"] == 0.25
    assert rows[1]["mean_answer_tokens"] is None and rows[1]["stderr"] == 0.01  # loglikelihood: nothing generated
    assert summary(rows) == {"overall": 0.7, "categories": {"math": 0.5, "custom": 0.9}, "finished_share": 0.25,
                             "mean_answer_tokens": 25.0}


def test_what_lm_eval_fails_to_fetch_from_the_hub_at_run_time_is_one_line():
    """MBPP+'s metric is code the `evaluate` library fetches from the hub when the task runs: offline it fails as
    `FileNotFoundError: Couldn't find a module script ...`, inside lm-eval; bai says it in one line, and leaves any
    other error alone."""
    from bai_core.evaluation.harness import offline_failure

    try:
        try:
            raise FileNotFoundError("Couldn't find a module script at /x/code_eval/code_eval.py. Module 'code_eval' "
                                    "doesn't exist on the Hugging Face Hub either.")
        except FileNotFoundError as inner:
            raise RuntimeError("task build failed") from inner
    except RuntimeError as outer:
        error = offline_failure(outer, ["mbpp_plus"])
    assert str(error).startswith("evaluate.suite mbpp_plus: lm-eval could not fetch what the task needs from the "
                                 "hub (Couldn't find a module script at /x/code_eval/code_eval.py.")
    assert "\n" not in str(error)
    assert offline_failure(ValueError("a bug"), ["gsm8k"]) is None


@pytest.mark.parametrize("args, error", [
    (["--suite", "bai_demo,gsm8kk"], "evaluate.suite: 'gsm8kk' is not an lm-eval task (closest: gsm8k"),
    (["--suite", " , "], "invalid config: the suite names no task"),
    (["--limit", "0"], "invalid limit: Input should be greater than 0"),
    (["--demo-family", "huge@0"], "evaluate.demo_family: unknown size 'huge'"),
    (["--backend", "vllm"], "evaluate.backend vllm: vLLM is not installed here"),  # this machine has no vLLM
    (["--suite", "paper"], "evaluate.suite: mbpp_plus executes the model's code; set "
                           "evaluate.confirm_run_unsafe_code: true"),
    # named by itself (not through a suite), its lm-eval config says it runs code: asked all the same
    (["--suite", "mbpp_plus"], "evaluate.suite: mbpp_plus executes the model's code; set "
                               "evaluate.confirm_run_unsafe_code: true"),
    # tests run offline with an empty Hugging Face cache: a hub dataset is named, not a 56-line traceback
    (["--suite", "gsm8k"], "evaluate.suite: gsm8k needs the hub dataset "),
    (["--suite", "mbpp_plus", "--confirm-run-unsafe-code"], "evaluate.suite: mbpp_plus needs the hub dataset "
                                                            "evalplus/mbppplus, which this machine's Hugging Face"),
    # lm-eval's HF backend splits questions only over CUDA devices: on CPU two processes would each score them all
    (["--processes", "2"], "evaluate.processes 2: lm-eval's HF backend splits the questions only over CUDA "
                           "devices, and 0 are here"),
    (["--tensor-parallel-size", "2"], "invalid config: tensor_parallel_size and data_parallel_size are the vllm "
                                      "backend's"),
])
def test_bad_eval_input_is_one_line_before_any_model_loads(demo_family, args, error, capsys, tmp_path):
    from bai.cli import main

    assert main(["eval", str(demo_family.root / "instruct"), "--store", str(tmp_path), *args]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"bai: error: {error}")
    assert not (tmp_path / "evaluations").exists()


def test_a_checkpoint_without_tokenizer_or_demo_family_is_refused(demo_family, capsys, tmp_path):
    from bai.cli import main

    member = tmp_path / "member"
    shutil.copytree(demo_family.root / "instruct", member)
    assert main(["eval", str(member), "--store", str(tmp_path / "s")]) == 1
    assert "models name no demo family; set evaluate.demo_family" in capsys.readouterr().err
    (member / "tokenizer.json").unlink()
    assert main(["eval", str(member), "--store", str(tmp_path / "s"), "--demo-family", "test@0"]) == 1
    assert capsys.readouterr().err.strip() == (f"bai: error: {member}: the checkpoint has no tokenizer "
                                               "(tokenizer.json, tokenizer.model or vocab.json); lm-eval needs one "
                                               "to prompt and score it")


def test_scoring_the_actor_needs_a_train_stage(tmp_path):
    from bai_core.config import load_pipeline_config
    from bai_core.errors import BaiError

    config = tmp_path / "c.yaml"
    config.write_text("models: {pretrained: a, instruct: b, reasoning: c}\nevaluate: {models: [actor]}\n")
    with pytest.raises(BaiError, match=r"^invalid config: evaluate.models: `actor` is the RL actor, and this run "
                                       r"has no train stage"):
        load_pipeline_config(config)
    with pytest.raises(BaiError, match=r"^invalid evaluate.models.0: Input should be 'pretrained'"):
        load_pipeline_config(config, ["evaluate.models=[actr]"])


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

    from bai_core.evaluation.harness import named_suites

    manager = TaskManager(include_path=include_paths())
    for suite, tasks in named_suites().items():
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


def test_more_devices_map_onto_lm_evals_and_vllms_own_settings_and_leave_the_key_alone(tmp_path):
    """Data-parallel scoring is `accelerate launch -m lm_eval`; vLLM gets its tensor and data parallel sizes. The
    questions' split leaves the scores' key as it is; splitting each matrix product (tensor parallel) does not."""
    from bai_core.evaluation.config import EvaluateSettings
    from bai_core.evaluation.harness import lm_eval_command, model_args, suite_tasks
    from bai_core.evaluation.stage import EvaluateStage, ScoredModel
    from bai_core.storage import StorageConfig

    two = EvaluateSettings(processes=2)
    assert lm_eval_command(tmp_path, two, suite_tasks(two), {}, "cuda").startswith(
        "accelerate launch --multi_gpu --num_processes 2 -m lm_eval run --model hf")
    vllm = EvaluateSettings(backend="vllm", tensor_parallel_size=2, data_parallel_size=4)
    assert model_args(tmp_path, vllm) | {"pretrained": None} == {
        "pretrained": None, "think_end_token": "</think>", "tensor_parallel_size": 2, "data_parallel_size": 4}
    assert "tensor_parallel_size" not in model_args(tmp_path, two)

    model = ScoredModel(name="m", source="m", fingerprint="sha256:0")
    storage = StorageConfig(uri=str(tmp_path / "store"))

    def key(**settings) -> str:
        return EvaluateStage(model, EvaluateSettings(**settings), storage, {}).key

    assert key() == key(processes=4)
    assert key(backend="vllm") == key(backend="vllm", data_parallel_size=8)
    assert key(backend="vllm") != key(backend="vllm", tensor_parallel_size=2)
