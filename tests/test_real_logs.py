"""`bai diagnose` on real RL logs written by other projects (tests/data/rl-logs/: TRL trainer states and console
output, verl's console, wandb history exports), each read as found, with no conversion, and judged as labelled by
eye (labels.toml; sources in each folder's SOURCE.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

from bai.cli import main

CORPUS = Path(__file__).parent / "data" / "rl-logs"
LABELS = tomllib.loads((CORPUS / "labels.toml").read_text())
VERDICT = {"collapse": "sequence_length_collapse", "hockey_stick": "reward_hockey_stick", "entropy": "entropy"}


def said(verdict: dict) -> str:
    return "yes" if verdict["detected"] else "no" if verdict["judged"] else "not logged"


def folder_and_run(name: str) -> tuple[Path, list[str]]:
    """A label's log folder, and `--run RUN` for one run of a table that holds several ("folder#run")."""
    folder, _, run = name.partition("#")
    return CORPUS / folder, ["--run", run] if run else []


def test_every_log_in_the_corpus_has_a_label_and_a_source():
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders == {name.partition("#")[0] for name in LABELS}, "a log folder without a label, or the reverse"
    assert len(LABELS) >= 10 and len(folders) >= 10
    for name, label in LABELS.items():
        folder, _ = folder_and_run(name)
        assert (folder / "SOURCE.md").is_file() and (folder / label["file"]).is_file()


@pytest.mark.parametrize("name", sorted(LABELS))
def test_a_real_log_is_read_as_found_and_judged_as_labelled(name, capsys):
    label = LABELS[name]
    folder, run = folder_and_run(name)
    assert main(["diagnose", str(folder / label["file"]), "--json", *run]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["points"] >= 11
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
