"""The train stage through `bai run` on the test-size demo family: GRPO and RLOO steps on CPU, what a rerun
reruns, resume after SIGKILL, abort_on with its event and verdicts, and bad input refused before training."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.services import api

pytestmark = [pytest.mark.usefixtures("prefect_api", "demo_store"),  # demo_store: the test family, trained once
              pytest.mark.slow]

TRAIN = {"reward": [{"model": "demo://test/reward"}], "prompts": "demo://test/rl", "steps": 6, "batch_size": 8,
         "generations": 4, "max_completion_length": 48, "save_every": 3, "length_bucket": 16, "detect_every": 2}


def write_config(folder: Path, name: str = "rl", models: dict | None = None, **train) -> Path:
    config = {"name": name, "storage": {"uri": str(folder / "store")},
              "models": models or {r: f"demo://test/{r}" for r in ("pretrained", "instruct", "reasoning")},
              "train": {**TRAIN, **train}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def bai(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bai.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def run_json(config: Path, *overrides: str) -> dict:
    """`bai run CONFIG --json [--set ...]` in a process of its own: what the CLI tests and the bit-for-bit
    comparisons (same process set-up on both sides) use."""
    proc = bai("run", str(config), "--json", *[x for o in overrides for x in ("--set", o)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def run_here(config: Path, *overrides: str) -> dict:
    """The same pipeline run in this process (no ~5 s of imports per run), for tests of what the stages do."""
    from bai.flows.pipeline import bai_pipeline
    from bai_core.config import load_pipeline_config

    return json.loads(json.dumps(bai_pipeline(load_pipeline_config(config, list(overrides)))))  # as --json prints it


def states(summary: dict) -> dict:
    return {row["stage"]: row["state"] for row in summary["stages"]}


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def metric_steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One GRPO run of 6 steps from M_bai, shared by the tests that read its outputs."""
    folder = tmp_path_factory.mktemp("trained")
    config = write_config(folder)
    return config, run_here(config)


def test_grpo_from_m_bai_publishes_actor_metrics_verdicts_and_plots(trained):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    _, summary = trained
    assert states(summary)["prepare-train"] == states(summary)["train"] == "Completed"
    outputs = summary["outputs"]
    actor = local(outputs["actor"])
    manifest = json.loads((actor / "bai_train.json").read_text())
    assert manifest["init"]["name"] == "bai" and manifest["init"]["fingerprint"].startswith("sha256:")
    assert manifest["algorithm"] == "grpo" and manifest["steps"] == 6
    # TRL's settings as the run had them: bai's (beta = kl_coef), TRL's own defaults, in the manifest and beside it
    assert manifest["trl_in_effect"]["beta"] == 0.04 and manifest["trl_in_effect"]["loss_type"] == "dapo"
    assert json.loads((actor.parent / "trl_settings.json").read_text()) == manifest["trl_in_effect"]
    assert not list(actor.glob("*.bin"))  # no pickles in the published actor
    # A complete HF checkpoint, holding what training made: its greedy answer equals that of the same tensors read
    # straight from model.safetensors into a model built from config.json, and its weights are not M_bai's.
    model = AutoModelForCausalLM.from_pretrained(actor).eval()
    tokenizer = AutoTokenizer.from_pretrained(actor)
    prompt = tokenizer("<s>user: Ann has 37 marbles and gets 5 more. How many now?</s>", return_tensors="pt")
    answer = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert answer.shape[1] > prompt["input_ids"].shape[1]
    tensors = load_file(actor / "model.safetensors")
    rebuilt = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(actor))
    missing, unexpected = rebuilt.load_state_dict(tensors, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}  # tied to the embedding when not stored
    rebuilt.tie_weights()
    assert torch.equal(rebuilt.eval().generate(**prompt, max_new_tokens=8, do_sample=False), answer)
    init = load_file(local(outputs["bai"]) / "model.safetensors")
    assert init.keys() == tensors.keys() and any(not torch.equal(init[k], tensors[k]) for k in tensors)

    records = [json.loads(line) for line in local(outputs["metrics"]).read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    for key in ("length/mean", "length/min", "length/max", "length/p90", "length/truncated_share", "reward/mean",
                "reward/std", "reward/reward-model/mean", "kl", "entropy", "clip_ratio", "learning_rate",
                "seconds_per_step"):
        assert all(key in r for r in records), key
    for r in records:  # the per-bucket rewards average to the step's reward, weighted by their counts
        buckets = {k.split("/")[1]: v for k, v in r.items() if k.startswith("reward_by_length/")}
        counts = {k.split("/")[1]: v for k, v in r.items() if k.startswith("count_by_length/")}
        assert sum(counts.values()) == 8
        assert sum(buckets[b] * counts[b] for b in buckets) / 8 == pytest.approx(r["reward/mean"], rel=1e-4, abs=1e-4)
        assert r["length/min"] <= r["length/mean"] <= r["length/p90"] <= r["length/max"]

    # The published verdicts are the detectors' reading of the published curve, diagnosed here afresh (default
    # thresholds, as the run had); which way they go is the run's business.
    from bai_core.stability.logs import read_log

    verdicts = json.loads(local(outputs["verdicts"]).read_text())
    curves = read_log(local(outputs["metrics"]))
    fresh = curves.diagnose(planned_steps=6)
    for name in ("sequence_length_collapse", "reward_hockey_stick"):
        assert verdicts[name] == fresh.to_json()[name], name
    assert verdicts["fired"] == fresh.fired
    for name in ("length.png", "reward.png", "reward_by_length.png", "entropy.png"):  # TRL logs the entropy
        assert (local(outputs["actor"]).parent / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_rerun_is_cached_and_changes_rerun_only_what_depends_on_them(trained):
    config, first = trained
    again = run_here(config)
    assert states(again)["train"] == "Cached" and again["outputs"] == first["outputs"]

    longer = run_here(config, "train.steps=8")  # only train depends on steps
    assert states(longer)["merge-stage1"] == states(longer)["merge-stage2"] == "Cached"
    assert states(longer)["train"] == "Completed" and longer["outputs"]["actor"] != first["outputs"]["actor"]

    other_alpha = run_here(config, "merge.alpha=0.3")  # stage 2 and train depend on alpha; stage 1 does not
    assert [states(other_alpha)[s] for s in ("merge-stage1", "merge-stage2", "train")] == [
        "Cached", "Completed", "Completed"]

    # The files beside the actor are part of the train artifact: one gone means the stage runs again (here from
    # its last checkpoint, at the end: nothing left to train) and says so.
    verdicts = local(first["outputs"]["verdicts"])
    kept = verdicts.read_bytes()
    verdicts.unlink()
    repaired = run_here(config)
    assert states(repaired)["train"] == "Rebuilt" and verdicts.read_bytes() == kept
    assert metric_steps(local(first["outputs"]["metrics"])) == list(range(1, 7))  # no step past the end
    assert (local(repaired["outputs"]["actor"]) / "model.safetensors").read_bytes() == \
           (local(first["outputs"]["actor"]) / "model.safetensors").read_bytes()


def test_rloo_steps_with_a_weighted_learned_and_verifiable_reward(tmp_path):
    reward = [{"model": "demo://test/reward", "weight": 0.5}, {"verifiable": "arithmetic", "weight": 2.0}]
    summary = run_here(write_config(tmp_path, name="rloo", algorithm="rloo", steps=4, init="reasoning",
                                    reward=reward))
    assert states(summary)["train"] == "Completed"
    records = [json.loads(line) for line in local(summary["outputs"]["metrics"]).read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {r["reward/verifiable-arithmetic/mean"] * 8 % 1 for r in records} == {0.0}  # k right out of 8
    for r in records:  # the total is the weighted sum of the components, as TRL computes it
        assert r["reward/mean"] == pytest.approx(0.5 * r["reward/reward-model/mean"]
                                                 + 2.0 * r["reward/verifiable-arithmetic/mean"], abs=1e-4)
    assert json.loads((local(summary["outputs"]["actor"]) / "bai_train.json").read_text())["algorithm"] == "rloo"


def test_grpo_with_the_math_reward_on_a_prompt_file_with_answers(tmp_path):
    """Text questions in their own column, made chat by the settings; the reasoning member answers in its
    think-block format, which math-verify and the demo task's own rule must score alike."""
    from bai_core.demo.arithmetic import problems
    from bai_core.demo.sizes import SIZES

    spec = SIZES["test"]
    rows = [{"question": p.question, "answer": p.answer} for p in problems("rl", 0, spec.a_range, spec.b_range, 16)]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    prompts = {"source": str(path), "prompt_column": "question", "chat": True}
    reward = [{"verifiable": "math"}, {"verifiable": "arithmetic", "weight": 0.0}]
    summary = run_here(write_config(tmp_path, name="math", steps=2, init="reasoning", prompts=prompts,
                                    reward=reward))
    assert states(summary)["train"] == "Completed"
    records = [json.loads(line) for line in local(summary["outputs"]["metrics"]).read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    for r in records:  # the same completions, two verifiers: one verdict
        assert r["reward/verifiable-math/mean"] == r["reward/verifiable-arithmetic/mean"] == r["reward/mean"]
    # the test reasoning member is right on ~38% of held-out problems: 16 completions all wrong has odds ~0.05%
    assert max(r["reward/verifiable-math/mean"] for r in records) > 0
    manifest = json.loads((local(summary["outputs"]["actor"]) / "bai_train.json").read_text())
    assert [r["verifiable"] for r in manifest["rewards"]] == ["math", "arithmetic"]


def test_the_ui_log_tells_the_runs_story_line_for_line_as_stderr(tmp_path, prefect_api):
    """`bai run` off a terminal prints timestamped lines; the flow run's log in the UI has the same lines, in the same
    order: each stage with its output, the merge formulas, the verdicts, the scores. Run outside a git checkout with
    lm-eval scoring, where lm-eval's bars and its git probe used to write junk into the log."""
    import re

    config = write_config(tmp_path, name="story", steps=4, reward=[{"verifiable": "arithmetic"}])
    data = yaml.safe_load(config.read_text())
    data["evaluate"] = {"suite": "demo", "models": ["actor"], "limit": 4, "max_gen_toks": 8}
    config.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "bai.cli", "run", str(config)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr and "fatal:" not in proc.stderr and "it/s]" not in proc.stderr
    lines = [line[9:] for line in proc.stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)]
    for expected in ("demo-family-test Completed", "  M_sft = 0.5 * instruct + 0.5 * reasoning: ",
                     "  M_bai = 0.5 * pretrained + 0.5 * M_sft: ", "  Sequence Length Collapse: not detected (L0 ",
                     "  Reward Hockey Stick: ", "train Completed", "  scores of actor: overall "):
        assert any(line.startswith(expected) for line in lines), (expected, lines)

    [summary] = (tmp_path / "store" / "runs" / "story").glob("*.json")
    flow_run_id = json.loads(summary.read_text())["flow_run_id"]
    messages: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the last lines reach the API a moment after the process ends
        logs = api(prefect_api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}},
                                                 "sort": "TIMESTAMP_ASC", "limit": 200})
        messages = [log["message"] for log in logs]
        if set(lines) <= set(messages):
            break
        time.sleep(1)
    assert [m for m in messages if m in set(lines)] == lines


def test_sigkill_mid_training_resumes_from_the_last_checkpoint(tmp_path):
    config = write_config(tmp_path, name="resume", steps=10, save_every=3)
    proc = subprocess.Popen([sys.executable, "-m", "bai.cli", "run", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    metrics = None
    while time.monotonic() < deadline:
        found = list((tmp_path / "store" / "train").glob("*/metrics.jsonl"))
        if found and len(metric_steps(found[0])) >= 5:
            metrics = found[0]
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert metrics is not None, "training never reached step 5"
    checkpoint = json.loads((metrics.parent / "checkpoint" / "_bai_complete.json").read_text())["step"]
    assert checkpoint in (3, 6, 9)

    resumed = bai("run", str(config))  # not --json: the progress lines on stderr say it resumed
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming train/{metrics.parent.name} from its checkpoint at step {checkpoint}" in resumed.stderr
    assert metric_steps(metrics) == list(range(1, 11))  # no step missing, none twice

    # Same weights as a run never interrupted: the checkpoint carried the optimizer, schedule and RNG states.
    (tmp_path / "straight").mkdir()
    straight = run_json(write_config(tmp_path / "straight", name="resume", steps=10, save_every=3))
    assert (metrics.parent / "actor" / "model.safetensors").read_bytes() == \
           (local(straight["outputs"]["actor"]) / "model.safetensors").read_bytes()


# Thresholds so strict that any shortening (collapse) or any dip followed by any rise (hockey stick) fires: these
# test the abort mechanics, not the toy.
STRICT = {
    "collapse": {"collapse_ratio": 0.99, "collapse_recovered_ratio": 10, "early_window_share": 1.0,
                 "min_confidence": 0},
    "hockey_stick": {"reward_drop_absolute": 0, "reward_drop_relative": 0, "reward_regain_share": 0.01,
                     "recovery_descent_ratio": 0.01, "early_window_share": 1.0, "min_confidence": 0},
    # any dip of the entropy below its start, not back by the end: the plumbing, not a real collapse
    "entropy": {"entropy_collapse_ratio": 0.999, "entropy_recovered_ratio": 10, "min_confidence": 0},
}
NAMES = {"collapse": ("Sequence Length Collapse", "sequence_length_collapse", "bai.stability.collapse"),
         "hockey_stick": ("Reward Hockey Stick", "reward_hockey_stick", "bai.stability.hockey-stick"),
         "entropy": ("Entropy collapse or spike", "entropy", "bai.stability.entropy")}


def carry_first_prompts(path: Path) -> Path:
    """RL prompts in a fixed order whose answers shorten by construction: the reasoning member thinks one step more
    for a carry or a borrow (~31 tokens against ~27 at the test size), so 4 steps of such problems come first, then
    only problems with neither. The length curve falls ~12% whatever the updates do, on any machine."""
    from bai_core.demo.arithmetic import problems
    from bai_core.demo.sizes import SIZES

    def carries(p) -> bool:
        return p.a % 10 + p.b % 10 >= 10 if p.op == "+" else p.a % 10 < p.b % 10

    pool = problems("rl", 0, SIZES["test"].a_range, SIZES["test"].b_range, 200)
    ordered = [p for p in pool if carries(p)][:8] + [p for p in pool if not carries(p)][:32]  # 2 prompts a step
    path.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": p.question}], "answer": p.answer}) + "\n"
                            for p in ordered))
    return path


@pytest.mark.parametrize("detector", ["collapse", "hockey_stick", "entropy"])
def test_abort_on_stops_cleanly_with_an_event_and_the_evidence(tmp_path, prefect_api, detector):
    from bai.flows.pipeline import PipelineFailed

    name, key, event_name = NAMES[detector]
    extra = {}
    if detector == "collapse":  # RL on the toy need not shorten anything (on some machines it did not): the prompts do
        extra = {"prompts": str(carry_first_prompts(tmp_path / "carry-first.jsonl")), "trl": {"shuffle_dataset": False}}
    config = write_config(tmp_path, name="abort", steps=20, detect_every=1, save_every=50,
                          detectors=STRICT[detector], abort_on=[detector], init="reasoning", **extra)
    # In this process: the message `bai run` prints after "bai: error: " (test_bad_train_input_through_bai_run
    # checks that line and exit code on a real process).
    with pytest.raises(PipelineFailed) as failure:
        run_here(config)
    last = str(failure.value)
    assert last.startswith("train stopped at step ") and f"{name} detected" in last and "\n" not in last
    assert {row["stage"]: row["state"] for row in failure.value.rows}["train"] == "Failed"
    step = int(last.removeprefix("train stopped at step ").split(":")[0])
    assert step < 20
    [folder] = (tmp_path / "store" / "train").iterdir()
    assert json.loads((folder / "checkpoint" / "_bai_complete.json").read_text())["step"] == step
    assert metric_steps(folder / "metrics.jsonl") == list(range(1, step + 1))
    verdicts = json.loads((folder / "verdicts.json").read_text())
    assert verdicts["aborted"]["step"] == step and verdicts["aborted"]["detector"] == detector
    assert detector in verdicts["fired"]
    evidence = verdicts[key]  # the abort says why the detector fired (for a hockey stick maybe in one length bucket)
    reasons = [evidence["reason"]] if evidence.get("overall_detected", evidence["detected"]) else []
    reasons += [bucket["reason"] for bucket in evidence.get("buckets", {}).values() if bucket["detected"]]
    assert reasons and any(reason in verdicts["aborted"]["reason"] for reason in reasons), verdicts["aborted"]
    assert not (folder / "actor").exists()  # no actor published for a stopped run
    with pytest.raises(PipelineFailed) as again:  # the verdict is this key's result: said again, not trained on
        run_here(config)
    assert str(again.value) == last
    assert metric_steps(folder / "metrics.jsonl") == list(range(1, step + 1))

    events = api(prefect_api, "/events/filter", {"filter": {"event": {"name": [event_name]},
                                                            "any_resource": {"id": [f"bai.train.{folder.name}"]}}})
    [event] = events["events"]
    assert event["payload"]["step"] <= step  # raised when it first fired; the abort is at that check
    artifacts = api(prefect_api, "/artifacts/filter", {"artifacts": {"type": {"any_": ["markdown"]}}})
    shown = [a for a in artifacts if a["description"].startswith("RL stability") and folder.name in a["data"]]
    # length, reward, reward per bucket and entropy (TRL logs it)
    assert shown and shown[0]["data"].count("data:image/png;base64,") == 4 and "**detected**" in shown[0]["data"]


def test_trainer_state_json_of_a_real_trl_run_is_diagnosed(trained, tmp_path):
    _, summary = trained
    state = local(summary["outputs"]["actor"]).parent / "checkpoint" / "trainer_state.json"
    proc = bai("diagnose", str(state), "--json", "--plot", str(tmp_path / "plots"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["format"] == "trl-trainer-state" and result["points"] == 6 and result["planned_steps"] == 6
    assert set(result) >= {"sequence_length_collapse", "reward_hockey_stick"}
    # TRL's own log has no per-bucket rewards: no empty bucket plot
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["entropy.png", "length.png", "reward.png"]
    ours = bai("diagnose", summary["outputs"]["metrics"].removeprefix("file://"))
    assert ours.returncode == 0 and "(bai-metrics, 6 points over steps 1-6 of a planned 6)" in ours.stdout


@pytest.mark.parametrize("change,error", [
    ({"steps": 0}, "invalid train.steps: Input should be greater than 0"),
    ({"batch_size": -4}, "invalid train.batch_size: Input should be greater than 0"),
    ({"generations": 1}, "GRPO needs at least 2 generations per prompt"),
    ({"batch_size": 6, "generations": 4}, "batch_size 6 is not a whole number of groups of 4 generations"),
    ({"trl": {"betta": 0.1}}, "trl.betta: GRPOConfig has no such argument (closest: beta"),
    ({"trl": {"max_steps": 3}}, "trl.max_steps is set by bai's own train settings"),
    ({"init": "bia"}, "'bia' names nothing (did you mean 'bai'?)"),
    ({"reward": [{"model": "demo://test/reward", "verifiable": "arithmetic"}]}, "give exactly one of `model`"),
])
def test_bad_train_settings_are_refused_when_the_config_is_read(tmp_path, change, error):
    from bai_core.config import load_pipeline_config
    from bai_core.errors import BaiError

    with pytest.raises(BaiError) as refused:
        load_pipeline_config(write_config(tmp_path, **change))
    assert error in str(refused.value) and "\n" not in str(refused.value)


def _prompts(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


@pytest.mark.parametrize("case", ["missing", "empty", "no-prompt-column", "reward-not-classifier",
                                  "verifiable-without-answer", "math-without-answer", "math-unreadable-answer",
                                  "no-chat-template"])
def test_bad_train_inputs_are_refused_before_anything_is_merged_or_trained(tmp_path, case, demo_family):
    from bai_core.errors import BaiError
    from bai_core.merge.config import MergeSettings
    from bai_core.rl.config import TrainSettings
    from bai_core.rl.stage import prepare_train
    from bai_core.sources import fetch_checkpoint
    from bai_core.storage import StorageConfig

    models = {r: f"demo://test/{r}" for r in ("pretrained", "instruct", "reasoning")}
    settings, error = dict(TRAIN), ""
    if case == "missing":
        settings["prompts"], error = str(tmp_path / "nope.jsonl"), "nope.jsonl: no such file"
    elif case == "empty":
        settings["prompts"], error = _prompts(tmp_path, []), "prompts.jsonl: no prompts in it"
    elif case == "no-prompt-column":
        settings["prompts"] = _prompts(tmp_path, ['{"question": "1+1?"}'])
        error = "prompts.jsonl: no `prompt` column (columns: question)"
    elif case == "reward-not-classifier":
        settings["reward"] = [{"model": "demo://test/instruct"}]
        error = "reward model demo://test/instruct: not a sequence classifier (its config.json says LlamaForCausalLM)"
    elif case == "verifiable-without-answer":
        settings["prompts"] = _prompts(tmp_path, ['{"prompt": "Ann has 3 pens. How many?"}'])
        settings["reward"] = [{"verifiable": "arithmetic"}]
        error = "reward verifiable-arithmetic: needs the prompts' reference answers, and "
    elif case == "math-without-answer":  # GSM8K's columns, the answer column not named
        settings["prompts"] = {"source": _prompts(tmp_path, ['{"question": "Ann has 3 pens. How many?", '
                                                             '"solution": "#### 3"}']), "prompt_column": "question"}
        settings["reward"] = [{"verifiable": "math"}]
        error = "prompts.jsonl has no `answer` column (columns: prompt, solution; set train.prompts.answer_column)"
    elif case == "math-unreadable-answer":
        settings["prompts"] = _prompts(tmp_path, ['{"prompt": "1+1?", "answer": "#### 2"}',
                                                  '{"prompt": "Ann has 3 pens. How many?", "answer": "#### "}'])
        settings["reward"], error = [{"verifiable": "math"}], "prompts.jsonl: row 2: math-verify cannot read"
    else:  # an actor whose tokenizer has no chat template, and the demo prompts are chat messages
        plain = tmp_path / "no-template"
        shutil.copytree(demo_family.root / "reasoning", plain)
        (plain / "chat_template.jinja").unlink(missing_ok=True)
        tokenizer_config = json.loads((plain / "tokenizer_config.json").read_text())
        tokenizer_config.pop("chat_template", None)
        (plain / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
        settings["init"], error = str(plain), "chat prompts, but the actor's tokenizer"
    storage = StorageConfig(uri=str(tmp_path / "store"))
    refs = {role: fetch_checkpoint(role, source, storage) for role, source in models.items()}
    with pytest.raises(BaiError) as refused:
        prepare_train(TrainSettings(**settings), refs, MergeSettings(), storage)
    assert error in str(refused.value) and "\n" not in str(refused.value)


def test_bad_train_input_through_bai_run_is_one_line_and_publishes_nothing(tmp_path):
    config = write_config(tmp_path, reward=[{"model": "demo://test/instruct"}])
    proc = bai("run", str(config))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("bai: error: reward model demo://test/instruct: not a "
                                                           "sequence classifier")
    assert not (tmp_path / "store" / "merges").exists() and not (tmp_path / "store" / "train").exists()
