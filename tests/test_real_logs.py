"""`bai diagnose` on real RL logs written by other projects (tests/data/rl-logs/: TRL trainer states and console
output, verl's console, wandb history exports), each read as found, with no conversion, and judged as labelled by
eye (labels.toml; sources in each folder's SOURCE.md)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from bai.cli import main

CORPUS = Path(__file__).parent / "data" / "rl-logs"
LABELS = tomllib.loads((CORPUS / "labels.toml").read_text())
VERDICT = {"collapse": "sequence_length_collapse", "hockey_stick": "reward_hockey_stick", "entropy": "entropy"}


def said(verdict: dict) -> str:
    return "yes" if verdict["detected"] else "no" if verdict["judged"] else "not logged"


def test_every_log_in_the_corpus_has_a_label_and_a_source():
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders == set(LABELS), "a log folder without a label, or a label without its log"
    for name in folders:
        assert (CORPUS / name / "SOURCE.md").is_file() and (CORPUS / name / LABELS[name]["file"]).is_file()


@pytest.mark.parametrize("name", sorted(LABELS))
def test_a_real_log_is_read_as_found_and_judged_as_labelled(name, capsys):
    label = LABELS[name]
    assert main(["diagnose", str(CORPUS / name / label["file"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["points"] >= 15
    found = {detector: said(result[key]) for detector, key in VERDICT.items()}
    collapse = result["sequence_length_collapse"]
    found["at_cap"] = ("not logged" if collapse["clipped_end"] is None and collapse["judged"]
                       else "yes" if collapse["at_cap"] else "no")
    assert found == {key: label[key] for key in found}, result


def test_a_planned_run_that_stopped_early_is_judged_with_the_plans_windows(capsys):
    """verl's console says `Total training steps: 435`; the log stops at step 26: the early window is 15% of 435
    steps, not of the 26 logged, and the completions a step come from the printed config."""
    log = CORPUS / "verl-console-agentic-rag-ppo" / "verl_demo.log"
    assert main(["diagnose", str(log), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["planned_steps"] == 435 and result["windows"]["early"] == 66 and result["windows"]["planned"]
    assert result["completions_per_step"] == 256
    assert result["reward_hockey_stick"]["samples_unit"] == "completions"


def test_a_console_log_in_bursts_is_spread_over_its_progress_bar(capsys):
    """TRL's console: 40 metric dicts printed in bursts (stdout is buffered, the bar is not), bar at 200/200: the
    points are every 5 steps, and the plan is 200."""
    log = CORPUS / "trl-console-nips-grpo-rho1-seed42" / "rho1.00_seed42.log"
    assert main(["diagnose", str(log), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["format"], result["points"], result["first_step"], result["last_step"],
            result["planned_steps"]) == ("trl-console", 40, 5, 200, 200)
