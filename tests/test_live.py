"""The detectors live on runs bai does not drive: `bai watch` on a log another process is still writing, and the
TRL callback inside a plain TRL GRPO script. Each must report a collapse within one detection interval (5 steps)
of the step where the log first shows it (the shortest prefix of the log on which `bai diagnose` fires)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bai_core.stability.curves import Curves

ROOT = Path(__file__).resolve().parents[1]
EVERY = 5


def first_detectable(records: list[dict], planned: int, detector: str = "collapse") -> int | None:
    """The first step at which the log so far makes `detector` fire."""
    curves = Curves("test")
    for record in records:
        curves.add(record)
        if curves.steps and detector in curves.diagnose(planned_steps=planned).fired:
            return curves.steps[-1]
    return None


def collapsing_records(steps: int = 60) -> list[dict]:
    rng = np.random.default_rng(5)
    length = np.interp(np.arange(1, steps + 1), [1, 5, 12, steps], [600, 600, 150, 140]) + rng.normal(0, 15, steps)
    return [{"step": s, "data": {"response_length/mean": float(v), "critic/score/mean": 0.4}}
            for s, v in zip(range(1, steps + 1), length)]


WRITER = """
import json, sys, time
records = json.loads(sys.argv[2])
with open(sys.argv[1], "a") as log:
    for record in records:
        log.write(json.dumps(record) + "\\n")
        log.flush()
        time.sleep(0.15)
"""


def test_bai_watch_reports_a_collapse_as_the_log_grows(tmp_path):
    records = collapsing_records()
    log = tmp_path / "metrics.jsonl"
    log.touch()
    env = {**os.environ, "PREFECT_API_URL": ""}
    watch = subprocess.Popen([sys.executable, "-m", "bai.cli", "watch", str(log), "--steps", "100", "--every",
                              str(EVERY), "--poll", "0.05", "--idle", "4"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.0)  # watching an empty file: nothing to say yet
    writer = subprocess.run([sys.executable, "-c", WRITER, str(log), json.dumps(records)], timeout=60)
    assert writer.returncode == 0
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    alarms = [line for line in out.splitlines() if line.startswith("step ") and "collapse DETECTED" in line]
    assert len(alarms) == 1, out
    seen = int(alarms[0].split(":")[0].removeprefix("step "))
    flat = [{"step": r["step"], **r["data"]} for r in records]
    detectable = first_detectable(flat, 100)
    assert detectable is not None and detectable <= seen < detectable + EVERY, (seen, detectable, out)
    assert "Sequence Length Collapse: DETECTED" in out  # the final verdicts on the whole log


def test_the_trl_callback_reports_a_collapse_inside_a_plain_trl_script(tmp_path):
    """tests/scripts/grpo_with_bai_callback.py: TRL's GRPOTrainer on the shipped tiny demo reasoning model, a reward
    that pays for short answers, bai's StabilityCallback added. TRL's own console output, as printed, is then read
    by `bai diagnose` to the same verdict."""
    model = ROOT / "bai_core" / "demo" / "shipped" / "test-seed0" / "reasoning"
    out = tmp_path / "run.json"
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "grpo_with_bai_callback.py"), str(model),
                          str(out), "--steps", "30", "--every", str(EVERY)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    history = [r for r in result["log_history"] if "completions/mean_length" in r]
    detectable = first_detectable(history, result["max_steps"])
    alarms = [a for a in result["alarms"] if a["detector"] == "collapse"]
    assert detectable is not None and len(alarms) == 1, result["alarms"]
    assert detectable <= alarms[0]["step"] < detectable + EVERY
    assert f"bai: step {alarms[0]['step']}: collapse DETECTED" in run.stderr  # the warning the user sees
    console = tmp_path / "console.log"
    console.write_text(run.stdout + run.stderr)
    diagnose = subprocess.run([sys.executable, "-m", "bai.cli", "diagnose", str(console), "--json", "--fail-on",
                               "collapse"], capture_output=True, text=True, timeout=120)
    assert diagnose.returncode == 3, diagnose.stderr
    verdict = json.loads(diagnose.stdout)
    assert verdict["format"] == "trl-console" and verdict["points"] == 30 and verdict["planned_steps"] == 30


def test_bai_watch_sends_each_alarm_as_a_prefect_event(tmp_path, prefect_api):
    """With a Prefect server set, the alarm `bai watch` prints is also an event about the log, its payload the
    evidence: what an Automation hangs on."""
    from tests.services import api

    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in collapsing_records()))
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    watch = subprocess.run([sys.executable, "-m", "bai.cli", "watch", str(log), "--steps", "100", "--poll", "0.1",
                            "--idle", "0.5"], capture_output=True, text=True, timeout=120, env=env)
    assert watch.returncode == 0, watch.stderr
    assert "collapse DETECTED" in watch.stdout and "no Prefect event" not in watch.stderr
    deadline, events = time.monotonic() + 30, []
    while time.monotonic() < deadline and not events:
        events = api(prefect_api, "/events/filter", {"filter": {
            "event": {"name": ["bai.stability.collapse"]},
            "any_resource": {"id": [f"bai.watch.{log.resolve()}"]}}})["events"]
        time.sleep(0.5)
    [event] = events
    assert event["payload"]["detector"] == "collapse" and event["payload"]["detected"] is True
