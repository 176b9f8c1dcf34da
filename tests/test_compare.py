"""The paper's two tables at test size: `bai compare` (every paradigm row, verdicts, table and plot published, a
rerun all cache hits) and the scored sweep (stage 1 once, RL pilots, a recommended alpha), plus their bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from tests.services import api

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]

TRAIN = {"reward": [{"model": "demo://test/reward"}], "prompts": "demo://test/rl", "steps": 4, "batch_size": 4,
         "generations": 2, "max_completion_length": 24, "save_every": 2, "length_bucket": 16, "detect_every": 2}


def config(store: Path, name: str, **sections) -> PipelineConfig:
    return PipelineConfig(name=name, storage={"uri": str(store)}, **sections,
                          models={role: f"demo://test/{role}" for role in ("pretrained", "instruct", "reasoning")})


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def test_compare_scores_every_paradigm_row_and_a_rerun_is_all_cache_hits(demo_store, prefect_api):
    from bai.flows.compare import bai_compare

    settings = config(demo_store.local_root, "cmp", train=TRAIN, evaluate={"limit": 8})
    first = bai_compare(settings)
    rows = {row["row"]: row for row in first["rows"]}
    assert list(rows) == ["Paradigm 1", "Paradigm 2", "Paradigm 3", "BAI", "ablation: pretrained",
                          "ablation: M_sft"]
    for name, row in rows.items():
        assert 0 <= row["overall"] <= 1 and row["bai_demo"] == row["overall"] and row["answer tokens"] > 0
        rl = name != "Paradigm 2"  # the reasoning model scored as it is
        assert row["RL steps"] == (4 if rl else 0)
        assert (0 <= row["overall before RL"] <= 1) if rl else "overall before RL" not in row
        assert row["length collapse"] in (("no", "detected") if rl else (None,))
        assert (row["final RL length"] is not None) == rl
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

    again = bai_compare(settings)
    assert again["rows"] == first["rows"]
    for name, states in again["stages"].items():
        assert {stage: state for stage, state in states.items()
                if stage.startswith(("merge", "train", "evaluate"))} == {
            stage: "Cached" if stage != "train" or name != "Paradigm 2" else "Skipped"
            for stage in states if stage.startswith(("merge", "train", "evaluate"))}, name


def test_the_scored_sweep_merges_stage1_once_runs_pilots_and_recommends(demo_store):
    from bai.flows.sweep import bai_sweep

    settings = config(demo_store.local_root, "sw", train=TRAIN, evaluate={"limit": 8})
    result = bai_sweep(settings, [0.3, 0.8], rl_steps=2)
    assert [row["alpha"] for row in result["rows"]] == [0.3, 0.8]
    assert all(row["scored"] == "RL actor" and row["RL steps"] == 2 and row["length collapse"] in ("no", "detected")
               for row in result["rows"])
    assert result["stages"][0.8]["merge-stage1"] == "Cached"  # stage 1 does not depend on alpha
    assert result["stages"][0.3]["evaluate-actor"] == "Completed"
    assert all(0 <= row["overall before RL"] <= 1 for row in result["rows"])  # M_bai, scored too
    recommended = [row for row in result["rows"] if row["recommended"] == "yes"]
    stable = [row for row in result["rows"] if row["length collapse"] == "no"]
    assert len(recommended) == (1 if stable else 0)
    if stable:
        assert recommended[0]["overall"] == max(row["overall"] for row in stable)
        assert result["recommended"] == recommended[0]["alpha"]
    assert local(result["plot"]).read_bytes()[:4] == b"\x89PNG"

    merges_only = bai_sweep(settings, [0.3], rl_steps=None)
    [row] = merges_only["rows"]
    assert row["scored"] == "M_bai" and row["RL steps"] == 0 and merges_only["stages"][0.3]["train"] == "Skipped"


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
