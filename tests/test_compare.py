"""The paper's two tables at test size: `bai compare` (every paradigm row, verdicts, table and plot published, a
rerun all cache hits) and the scored sweep (stage 1 once, RL pilots, a recommended alpha), plus their bad input."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest
import yaml

from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from tests.services import api

TRAIN = {"reward": [{"model": "demo://test/reward"}], "prompts": "demo://test/rl", "steps": 4, "batch_size": 4,
         "generations": 2, "max_completion_length": 24, "save_every": 2, "length_bucket": 16, "detect_every": 2}


def config(store: Path, name: str, **sections) -> PipelineConfig:
    return PipelineConfig(name=name, storage={"uri": str(store)}, **sections,
                          models={role: f"demo://test/{role}" for role in ("pretrained", "instruct", "reasoning")})


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def verdicts_of_its_own_run(point: PipelineConfig) -> tuple[str, str]:
    """The row's run again (all cached), its published per-step metrics diagnosed afresh: (collapse, hockey stick)
    as the table should show them. Either verdict can be right; the row must carry its own run's."""
    from bai.flows.pipeline import bai_pipeline
    from bai_core.stability.logs import read_log

    summary = bai_pipeline(point)
    curves = read_log(local(summary["outputs"]["metrics"]))
    found = curves.diagnose(point.train.detectors, planned_steps=point.train.steps)
    return ("detected" if found.sequence_length_collapse.detected else "no",
            "detected" if found.reward_hockey_stick.detected else "no")


@pytest.mark.slow
def test_compare_scores_every_paradigm_row_and_a_rerun_is_all_cache_hits(own_demo_store, prefect_api, tmp_path,
                                                                         capsys):
    from bai.cli import main
    from bai.flows.compare import bai_compare
    from bai_core.experiments import comparison_runs

    settings = config(own_demo_store.local_root, "cmp", train=TRAIN, evaluate={"limit": 8})
    first = bai_compare(settings)
    rows = {row["row"]: row for row in first["rows"]}
    assert list(rows) == ["Paradigm 1", "Paradigm 2", "Paradigm 3", "BAI", "ablation: pretrained",
                          "ablation: M_sft"]
    for name, row in rows.items():
        assert 0 <= row["overall"] <= 1 and row["bai_demo"] == row["overall"] and row["answer tokens"] > 0
        rl = name != "Paradigm 2"  # the reasoning model scored as it is
        assert row["RL steps"] == (4 if rl else 0)
        assert (0 <= row["overall before RL"] <= 1) if rl else "overall before RL" not in row
        assert (row["final RL length"] is not None) == rl
    points = {variant.row: point for variant, point in comparison_runs(settings)}
    for name, row in rows.items():
        expected = verdicts_of_its_own_run(points[name]) if name != "Paradigm 2" else (None, None)
        assert (row["length collapse"], row["hockey stick"]) == expected, name
    assert first["stages"]["Paradigm 2"]["train"] == "Skipped"
    assert first["stages"]["Paradigm 1"]["evaluate-actor"] == "Completed"
    # the reasoning model, scored as Paradigm 2 and as Paradigm 3's starting point, is scored once
    assert first["stages"]["Paradigm 3"]["evaluate-reasoning"] == "Cached"
    assert rows["Paradigm 3"]["overall before RL"] == rows["Paradigm 2"]["overall"]

    assert local(first["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert local(first["csv"]).read_text().splitlines()[0].startswith("row,start,bai_demo,overall")
    assert "| BAI | RL from M_bai |" in local(first["markdown"]).read_text()
    [table] = api(prefect_api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["cmp-compare"]}},
                                                     "sort": "CREATED_DESC", "limit": 1})
    assert [row["row"] for row in json.loads(table["data"])] == list(rows)

    # The command (its entry point, in this process), as a user runs it: every stage a cache hit, the same table.
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True)))
    assert main(["compare", str(path), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["rows"] == first["rows"]
    for name, states in again["stages"].items():
        assert {stage: state for stage, state in states.items()
                if stage.startswith(("merge", "train", "evaluate"))} == {
            stage: "Cached" if stage != "train" or name != "Paradigm 2" else "Skipped"
            for stage in states if stage.startswith(("merge", "train", "evaluate"))}, name


@pytest.mark.slow
def test_the_scored_sweep_merges_stage1_once_runs_pilots_and_recommends(own_demo_store, prefect_api, tmp_path,
                                                                        capsys):
    from bai.cli import main
    from bai.flows.sweep import bai_sweep
    from bai_core.experiments import sweep_runs

    settings = config(own_demo_store.local_root, "sw", train=TRAIN, evaluate={"limit": 8})
    result = bai_sweep(settings, [0.3, 0.8], rl_steps=2)
    assert [row["alpha"] for row in result["rows"]] == [0.3, 0.8]
    assert all(row["scored"] == "RL actor" and row["RL steps"] == 2 for row in result["rows"])
    for row, point in zip(result["rows"], sweep_runs(settings, [0.3, 0.8], rl_steps=2)):
        assert (row["length collapse"], row["hockey stick"]) == verdicts_of_its_own_run(point), row["alpha"]
    assert result["stages"][0.8]["merge-stage1"] == "Cached"  # stage 1 does not depend on alpha
    assert result["stages"][0.3]["evaluate-actor"] == "Completed"
    assert all(0 <= row["overall before RL"] <= 1 for row in result["rows"])  # M_bai, scored too
    # The recommendation: the best overall among rows without a collapse (test_recommendation has both cases).
    stable = [row for row in result["rows"] if row["length collapse"] == "no"]
    best = max(stable, key=lambda row: row["overall"])["alpha"] if stable else None
    assert result["recommended"] == best
    assert [row["alpha"] for row in result["rows"] if row["recommended"] == "yes"] == ([best] if stable else [])
    assert local(result["plot"]).read_bytes()[:4] == b"\x89PNG"

    # The command, as a user runs it, without pilots: M_bai scored as merged, from the cache.
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True)))
    assert main(["sweep", str(path), "--alphas", "0.3", "--json"]) == 0
    merges_only = json.loads(capsys.readouterr().out)
    [row] = merges_only["rows"]
    assert row["scored"] == "M_bai" and row["RL steps"] == 0
    assert row["overall"] == result["rows"][0]["overall before RL"]
    assert merges_only["stages"]["0.3"]["train"] == "Skipped"
    assert merges_only["stages"]["0.3"]["evaluate-bai"] == "Cached"  # the pilot scored this M_bai already


    # The same sweep with both points at once on a real Dask LocalCluster (the path tune's trials take): each point's
    # pipeline ran in a worker process, not in this one, and found every stage published.
    from bai_core.fanout import Fanout

    at_once = bai_sweep(settings, [0.3, 0.8], rl_steps=2, fanout=Fanout(workers=2))
    scores = lambda rows: [{k: v for k, v in row.items() if not k.startswith("merge-")} for row in rows]  # noqa: E731
    assert scores(at_once["rows"]) == scores(result["rows"])
    assert all(states[stage] == "Cached" for states in at_once["stages"].values() for stage in states
               if stage.startswith(("merge", "train", "evaluate")))
    here = f"{socket.gethostname()}:{os.getpid()}"
    assert set(result["ran_on"].values()) == {here} and here not in at_once["ran_on"].values()


@pytest.mark.parametrize("text, error", [
    ("", "--alphas: give at least one value"),
    ("0.1,1.5", "--alphas: 1.5 is outside [0, 1]"),
    ("0.1,-0.2", "--alphas: -0.2 is outside [0, 1]"),
    ("0.1,half", "--alphas: 'half' is not a number"),
])
def test_bad_alphas_are_named(text, error):
    from bai_core.experiments import parse_alphas

    with pytest.raises(BaiError, match="^" + re.escape(error)):
        parse_alphas(text)
    assert parse_alphas("0.1, 0.5,0.9") == [0.1, 0.5, 0.9]


def test_compare_and_pilots_need_the_sections_they_use(tmp_path, capsys):
    from bai.cli import main

    path = tmp_path / "c.yaml"
    path.write_text("models: {pretrained: a/b, instruct: a/c, reasoning: a/d}\nevaluate: {suite: demo}\n")
    assert main(["compare", str(path)]) == 1
    assert capsys.readouterr().err.startswith("bai: error: bai compare: the config needs `train:`")
    assert main(["sweep", str(path), "--rl-steps", "5"]) == 1
    assert capsys.readouterr().err.strip() == ("bai: error: --rl-steps: the config has no `train:` section to take "
                                               "the pilots' RL settings from")
    assert main(["sweep", str(path), "--alphas", "2"]) == 1
    assert "--alphas: 2 is outside [0, 1]" in capsys.readouterr().err
    assert main(["sweep", str(path), "--objective", "acc"]) == 1  # refused before the first point, not after all
    assert capsys.readouterr().err.strip() == ("bai: error: --objective 'acc': not a score of this sweep (overall, "
                                               "or a task of its suite: bai_demo)")


def test_recommendation_is_the_best_row_without_a_collapse_and_none_when_every_row_collapsed():
    from bai_core.report import recommend

    rows = [{"alpha": 0.3, "overall": 0.9, "length collapse": "detected"},
            {"alpha": 0.5, "overall": 0.6, "length collapse": "no"},
            {"alpha": 0.7, "overall": 0.7, "length collapse": "no"},
            {"alpha": 0.9, "overall": 0.8, "length collapse": None}]  # no RL: nothing to collapse
    assert recommend(rows)["alpha"] == 0.9
    assert recommend(rows[:3])["alpha"] == 0.7  # the best score (0.3's) collapsed: not recommended
    assert recommend(rows[:1]) is None
    assert recommend([{**row, "bai_demo": 1 - row["overall"]} for row in rows], "bai_demo")["alpha"] == 0.5


@pytest.mark.parametrize("collapse,hockey", [(True, False), (False, True)])
def test_a_row_carries_its_runs_verdicts_and_final_length(tmp_path, collapse, hockey):
    """The slow tests' runs may all come out stable; here both verdicts are set, so a table that always said "no"
    (or swapped the two) fails."""
    from bai_core.report import run_row
    from bai_core.storage import ArtifactStore

    store = ArtifactStore(str(tmp_path))
    verdicts = {"sequence_length_collapse": {"detected": collapse, "final": 17.5},
                "reward_hockey_stick": {"detected": hockey}, "steps": 9}
    summary = {"outputs": {"verdicts": store.put_text("train/k/verdicts.json", json.dumps(verdicts)),
                           "scores": {"actor": {"rows": [{"task": "bai_demo", "score": 0.5}], "overall": 0.5,
                                                "mean_answer_tokens": 3.0, "finished_share": 1.0}}}}
    row = run_row(summary, "actor", store)
    assert row["length collapse"] == ("detected" if collapse else "no")
    assert row["hockey stick"] == ("detected" if hockey else "no")
    assert (row["RL steps"], row["final RL length"], row["overall"], row["bai_demo"]) == (9, 17.5, 0.5, 0.5)
