"""`bai diagnose` on logs of other RL stacks: a wandb CSV export, verl's JSONL file logger; exit codes and errors.
(A TRL trainer_state.json of a real run and bai's own metrics.jsonl are diagnosed in test_train.py.)"""

import csv
import json

import numpy as np
import pytest

from bai_core.cli import main

STEPS = np.arange(600)
RNG = np.random.default_rng(7)
COLLAPSING = np.interp(STEPS, [0, 15, 30, 600], [930, 930, 260, 280]) + RNG.normal(0, 25, 600)
REWARD = 0.6 + 0.1 * STEPS / 600 + RNG.normal(0, 0.03, 600)


def write_csv(path, lengths, rewards):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Step", "grpo-run - response_length/mean", "grpo-run - critic/score/mean"])
        writer.writerows(zip(STEPS, lengths, rewards))
    return path


def test_wandb_csv_export_with_collapse(tmp_path, capsys):
    log = write_csv(tmp_path / "export.csv", COLLAPSING, REWARD)
    assert main(["diagnose", str(log), "--json"]) == 0  # without --fail-on a verdict is not an error
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "csv" and result["steps"] == 600
    collapse = result["sequence_length_collapse"]
    assert collapse["detected"] is True and 15 <= collapse["collapsed_at"] <= 30 and collapse["recovered"] is False
    assert result["reward_hockey_stick"]["detected"] is False
    assert main(["diagnose", str(log), "--fail-on", "collapse,hockey-stick"]) == 3
    assert main(["diagnose", str(log), "--fail-on", "hockey-stick"]) == 0
    assert "Sequence Length Collapse: DETECTED" in capsys.readouterr().out


def test_verl_file_logger_jsonl(tmp_path, capsys):
    log = tmp_path / "verl.jsonl"
    log.write_text("".join(json.dumps({"step": int(s), "data": {"response_length/mean": 400 + s / 3,
                                                                  "critic/score/mean": float(r)}}) + "\n"
                           for s, r in zip(STEPS, REWARD)))
    assert main(["diagnose", str(log), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "verl" and result["steps"] == 600
    assert not result["sequence_length_collapse"]["detected"]
    assert result["sequence_length_collapse"]["trend_per_100_steps"] > 0


@pytest.mark.parametrize("content,error", [
    (None, "no such file"),
    ("just some text\n", "not a log this reads"),
    ('{"step": 1, "loss": 0.3}\n', "no training steps with a response length or reward"),
    ('{"log_history": [\n', "not valid JSON"),
])
def test_unreadable_logs_are_one_line_naming_the_file(tmp_path, capsys, content, error):
    log = tmp_path / "log.json"
    if content is not None:
        log.write_text(content)
    assert main(["diagnose", str(log)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bai: error: {log}") and error in err and "\n" not in err


def test_unknown_detector_name_is_refused(tmp_path, capsys):
    log = write_csv(tmp_path / "export.csv", COLLAPSING, REWARD)
    assert main(["diagnose", str(log), "--fail-on", "colapse"]) == 1
    assert "unknown detector" in capsys.readouterr().err
