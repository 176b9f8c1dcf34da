"""`bai tune`: an Optuna study over (w, alpha), each trial a cached merge-and-score on the dev split; the best merged
as M_bai and scored once on the eval split. A stopped study resumes from the store; bad input is one line before
anything merges."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MODELS = {role: f"demo://test/{role}" for role in ("pretrained", "instruct", "reasoning")}
TRAIN = {"reward": [{"verifiable": "arithmetic"}], "prompts": "demo://test/rl", "batch_size": 8, "generations": 4,
         "max_completion_length": 32}


def bai_tune(config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bai.cli", "tune", str(config), *args], capture_output=True,
                          text=True, timeout=timeout)


def write(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump({"name": "tune", "models": MODELS, **sections}))
    return path


@pytest.mark.parametrize("sections,error", [
    ({"tune": {"w": 1.5}}, "invalid tune.w: 1.5 is outside [0, 1]"),
    ({"tune": {"alpha": {"low": 0.7, "high": 0.2}}}, "invalid tune.alpha: low 0.7 is above high 0.2: the range is "
                                                     "empty"),
    ({"tune": {"w": 0.5, "alpha": 0.5}}, "invalid tune: w and alpha are both fixed: nothing to search (give bounds "
                                         "to one of them)"),
    ({"evaluate": {"suite": "demo"}, "tune": {"suite": "demo"}},
     "tune.suite: bai_demo is also what evaluate.suite scores: the weights would be chosen on the eval split; score "
     "trials on a dev split (e.g. demo-dev)"),
    ({"tune": {"metric": "accuracy"}}, "tune.metric: 'accuracy' is not a score of the dev suite (overall, or one of "
                                      "bai_demo_dev)"),
    ({"evaluate": {"suite": "paper"}}, "tune.suite: bai knows no dev split of the evaluate suite (paper); name the "
                                       "suite or lm-eval tasks to score trials on (a dev or validation split, never "
                                       "the eval split)"),
    ({"tune": {"cluster": "tcp://127.0.0.1:9"}}, "tune.cluster tcp://127.0.0.1:9: no Dask scheduler answers there ("),
    ({"tune": {"pilots": {}}}, "invalid config: tune.pilots: RL pilots need a train section (their reward, prompts "
                               "and settings)"),
    ({"train": {**TRAIN, "init": "sft"}, "tune": {"pilots": {}}},
     "invalid config: tune.pilots: train.init is 'sft'; pilots search the RL start M_bai, so train from bai"),
    ({"train": {**TRAIN, "steps": 30}, "tune": {"pilots": {"steps": 10, "rungs": 3}}},
     "invalid tune.pilots: the last rung trains 40 steps, more than the run's 30 (train.steps): fewer rungs, or "
     "fewer steps in the first"),
    ({"tune": {"length_weight": -1}}, "invalid tune.length_weight: Input should be greater than or equal to 0"),
])
def test_bad_tune_input_is_one_line_before_anything_merges(tmp_path, sections, error):
    proc = bai_tune(write(tmp_path / "c.yaml", storage={"uri": str(tmp_path / "store")}, **sections))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"bai: error: {error}")
    assert not (tmp_path / "store").exists()  # nothing fetched, merged or published


def test_the_dev_split_shares_no_problem_with_the_eval_split():
    """Trials are scored on problems the eval split never holds: a problem is its numbers and its answer."""
    from bai_core.demo.suites.bai_demo.utils import dev_split, eval_split

    def problems(split) -> set:
        return {(tuple(re.findall(r"\d+", row["question"])), row["answer"]) for row in split["test"]}

    for size in ("test", "demo"):
        dev, held_out = problems(dev_split(size)), problems(eval_split(size))
        assert len(dev) > 20 and len(held_out) > 20 and not dev & held_out


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_stopped_study_resumes_from_the_store_and_merges_its_best(own_demo_store, tmp_path):
    """Three trials, then the same study asked for five, two at a time on a real Dask LocalCluster: the first three
    come back Cached with the same weights and values (a study stopped after three, rerun: the sampler's first
    points do not depend on how many it is asked for at once), the last two are scored on the cluster's workers,
    and the best of the five is merged as M_bai. Trial 0 is the config's own weights; the pick and those
    weights are each scored once on the eval split."""
    config = write(tmp_path / "c.yaml", storage={"uri": str(own_demo_store.local_root)}, merge={"alpha": 0.25},
                   evaluate={"suite": "demo"}, tune={"w": 0.5, "finished_weight": 1.0})
    first = bai_tune(config, "--trials", "3", "--json")
    assert first.returncode == 0, first.stderr
    again = bai_tune(config, "--trials", "5", "--json", "--set", "tune.workers=2")
    assert again.returncode == 0, again.stderr
    before, after = json.loads(first.stdout), json.loads(again.stdout)
    pick = lambda trial: (trial["w"], trial["alpha"], trial["value"], trial["key"])  # noqa: E731
    assert [pick(t) for t in after["trials"][:3]] == [pick(t) for t in before["trials"]]
    assert [t["trial"] for t in after["trials"]] == [0, 1, 2, 3, 4]
    # Scored in the cluster's worker processes, not in the flow's own (where the first run scored). Which worker
    # takes which trial is Dask's choice: in CI it has put both on one worker.
    assert {t["ran_on"] for t in after["trials"][3:]}.isdisjoint({t["ran_on"] for t in before["trials"]})
    assert {t["w"] for t in after["trials"]} == {0.5} and after["trials"][0]["alpha"] == 0.25  # the config's
    best = max(after["trials"], key=lambda t: t["value"])
    assert after["best"] == {"w": 0.5, "alpha": best["alpha"]}
    manifest = json.loads(Path(after["bai"].removeprefix("file://"), "bai_merge.json").read_text())
    assert manifest["stages"][-1]["terms"][0] == {"source": "pretrained", "weight": best["alpha"]}
    assert set(after["eval"]) == {"pick", "config"} and None not in after["eval"].values()
    assert Path(after["plot"].removeprefix("file://")).read_bytes().startswith(b"\x89PNG")
    assert [t["state"] for t in after["trials"]] == ["Cached"] * 3 + ["Completed"] * 2


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_bai_run_with_a_tune_section_trains_from_the_studys_pick(own_demo_store, tmp_path):
    """The trials run before the merges; the merges take the best weights, and the RL actor starts from that M_bai."""
    train = {"reward": [{"model": "demo://test/reward"}], "prompts": "demo://test/rl", "steps": 2, "batch_size": 8,
             "generations": 4, "max_completion_length": 32}
    config = write(tmp_path / "c.yaml", storage={"uri": str(own_demo_store.local_root)}, train=train,
                   tune={"w": 0.5, "trials": 2, "finished_weight": 1.0, "suite": "demo-dev"})
    proc = subprocess.run([sys.executable, "-m", "bai.cli", "run", str(config), "--json"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    stages = [row["stage"] for row in summary["stages"]]
    assert stages.index("trial-1") < stages.index("merge-stage1") < stages.index("train")
    best = max(summary["trials"], key=lambda t: t["value"])
    assert summary["merge"]["alpha"] == best["alpha"] and summary["merge"]["instruct_weight"] == 0.5
    actor = Path(summary["outputs"]["actor"].removeprefix("file://"))
    init = json.loads((actor / "bai_train.json").read_text())["init"]
    assert init["source"] == summary["outputs"]["bai"]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_rl_pilots_are_rungs_of_one_cached_train_run(own_demo_store, tmp_path):
    """With pilots (and a length term), each trial the pruner keeps gets 2, then 4 RL steps of the train section's
    run. The 4-step rung resumes the 2-step rung's checkpoint (its metrics start with the shorter run's) and ends with
    the same weights as 4 steps trained from the start; the pick went through every rung; a rerun finds every trial
    and pilot Cached."""
    from safetensors.torch import load_file

    from bai_core.config import load_pipeline_config
    from bai_core.evaluation.stage import suite_metadata
    from bai_core.plan import checkpoint_sources
    from bai_core.rl.stage import prepare_train
    from bai_core.sources import fetch_checkpoint
    from bai_core.tune.pilot import pilot_settings, run_pilot
    from bai_core.tune.study import dev_settings

    config = write(tmp_path / "c.yaml", storage={"uri": str(own_demo_store.local_root)}, train={**TRAIN, "steps": 8},
                   evaluate={"suite": "demo"},
                   tune={"w": 0.5, "trials": 3, "length_weight": 0.5, "pilots": {"steps": 2, "rungs": 2}})
    proc = bai_tune(config, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    for trial in result["trials"]:
        # the merge's value: its dev score, less half its relative distance from the reasoning member's length
        assert trial["reasoning_tokens"] > 0 and trial["merge_value"] == pytest.approx(
            trial["overall"] - 0.5 * abs(trial["mean_answer_tokens"] / trial["reasoning_tokens"] - 1))
        reached = 2 if trial["pruned_at"] is None else trial["pruned_at"]
        assert [p["steps"] for p in trial["pilots"]] == [2, 4][:reached]
        assert trial["value"] == (trial["pilots"][-1]["value"] if trial["pilots"] else trial["merge_value"])
    assert result["trials"][0]["pruned_at"] is None  # the first trial has no one to lose to (asynchronous halving)
    finished = [t for t in result["trials"] if t["pruned_at"] is None]
    best = max(finished, key=lambda t: t["value"])
    assert result["best"] == {"w": 0.5, "alpha": best["alpha"]}

    store = own_demo_store.local_root
    shorter, longer = result["trials"][0]["pilots"]
    assert longer["train_key"] != shorter["train_key"]
    lines = lambda pilot: (store / "train" / pilot["train_key"][:24] / "metrics.jsonl").read_text().splitlines()  # noqa: E731
    assert len(lines(longer)) == 4 and lines(longer)[:2] == lines(shorter)

    # The same 4 steps trained from the start: another key (it continues nothing), the same weights.
    loaded = load_pipeline_config(config)
    refs = {role: fetch_checkpoint(role, getattr(loaded.models, role), loaded.storage) for role in MODELS}
    dev = dev_settings(loaded)
    inputs = prepare_train(pilot_settings(loaded.tune), refs, loaded.merge, loaded.storage)
    fresh, how = run_pilot(2, result["trials"][0], None, refs, loaded.merge, loaded.tune, inputs, dev,
                           suite_metadata(dev, checkpoint_sources(loaded)), loaded.storage,
                           result["trials"][0]["reasoning_tokens"])
    assert how == "built" and fresh.train_key != longer["train_key"] and fresh.steps == 4
    weights = lambda key: load_file(next((store / "train" / key[:24] / "actor").glob("*.safetensors")))  # noqa: E731
    resumed, from_start = weights(longer["train_key"]), weights(fresh.train_key)
    assert all((resumed[name] == from_start[name]).all() for name in resumed)
    assert fresh.value == longer["value"]

    again = bai_tune(config)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = [line.split() for line in again.stdout.splitlines() if line.startswith("trial-")]
    assert len(rows) == 3 + sum(len(t["pilots"]) for t in result["trials"])
    assert {row[1] for row in rows} == {"Cached"}
