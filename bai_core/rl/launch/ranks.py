"""The train stage's own process while its ranks train (`train.launch` with more than one process): it starts them
with `accelerate launch`, follows rank 0's metrics.jsonl and alarms so that progress, the 10% lines, the Prefect
events and the verdicts are what a single-process run shows, and stops or names the ranks when something ends early.

- A stop signal (SIGTERM, Ctrl-C, a UI cancel) stops every rank: the launcher gets SIGTERM and passes it on; what is
  still alive a few seconds later is killed.
- A rank that dies fails the stage in one line naming the rank and its last log line (the launcher tears the others
  down: `--max_restarts 0`).
- The checkpoints that rank 0 publishes are the single-process stage's: a rerun resumes from the last one.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

from bai_core import progress
from bai_core.errors import BaiError
from bai_core.launcher import start, wait
from bai_core.rl.config import TrainSettings
from bai_core.rl.launch.config import check_launch, launch_command, shown
from bai_core.rl.launch.worker import ALARMS, OUTCOME, rank_log, write_job
from bai_core.rl.metrics import MetricsLog, MonitorHooks
from bai_core.rl.prompts import PromptSet
from bai_core.rl.run_store import announce, find_checkpoint, new_attempt
from bai_core.storage import StorageConfig

POLL_SECONDS = 0.5


def train_on_ranks(init: Path, reward_paths: dict[str, Path], prompts: PromptSet, settings: TrainSettings,
                   workdir: Path, actor_output: Path, metrics: MetricsLog, hooks: MonitorHooks,
                   resume_from: Path | None, storage: StorageConfig, folder: str, key: str):
    """Train on the ranks `settings.launch` asks for; returns the single-process stage's TrainOutcome."""
    from bai_core.rl.trainer import TrainOutcome, device
    from bai_core.stability.logs import read_log

    launch = settings.launch
    on_gpu = device() == "cuda"
    meet = check_launch(launch, on_gpu)
    job = write_job(workdir / "job.json", init=init, reward_paths=reward_paths, prompts=prompts, settings=settings,
                    workdir=workdir, actor_output=actor_output, resume_from=resume_from, storage=storage,
                    folder=folder, key=key)
    command = launch_command(launch, meet, job, on_gpu)
    progress.note(f"training on {launch.world_size} ranks ({launch.processes} per machine, {launch.strategy}): "
                  f"{shown(command)}")
    (workdir / "launched.json").write_text(json.dumps({"command": command, "machine_rank": meet.machine_rank}))
    meeting = _Meeting(storage, folder, meet, resume_from) if launch.machines > 1 else None
    started = time.perf_counter()
    launcher = start(command, workdir / "launcher.log")
    follower = _Follower(workdir, settings.steps, len(metrics.records), hooks)
    try:
        wait(launcher, lambda: follower.follow() or False, POLL_SECONDS)
        follower.follow()
        if launcher.returncode != 0:
            raise BaiError(failure(workdir, launcher.returncode, launch.world_size))
    except BaseException as e:
        if meeting:
            meeting.ended(e)
        raise
    if meeting:
        meeting.ended(None)
    outcome = json.loads((workdir / OUTCOME).read_text())
    curves = read_log(workdir / "metrics.jsonl")
    diagnosis = curves.diagnose(settings.detectors, planned_steps=settings.steps)
    aborted = tuple(outcome["aborted"]) if outcome["aborted"] else None
    return TrainOutcome(steps=outcome["steps"], seconds=round(time.perf_counter() - started, 2),
                        diagnosis=diagnosis, aborted=aborted, device=outcome["device"],
                        trl_settings=outcome["trl_settings"])


class _Meeting:
    """Machine 0's meeting note for the other machines (rl/launch/machines.py): where to meet, then how it ended."""

    def __init__(self, storage: StorageConfig, folder: str, meet, resume_from: Path | None):
        from bai_core.storage import open_store

        self.store, self.folder, self.announce = open_store(storage), folder, announce
        step = find_checkpoint(self.store, folder)[1]["step"] if resume_from else 0
        announce(self.store, folder, "training", address=meet.address, port=meet.port, attempt=new_attempt(),
                 resume_step=step, reason="")

    def ended(self, error: BaseException | None) -> None:
        if error is None:
            self.announce(self.store, self.folder, "finished")
        else:
            stopped = not isinstance(error, Exception)  # a stop signal, Ctrl-C, a UI cancel
            self.announce(self.store, self.folder, "stopped" if stopped else "failed",
                          reason=str(error).splitlines()[0] if str(error) else type(error).__name__)


class _Follower:
    """Reads what rank 0 has written since the last look and reports it as the single-process monitor would."""

    def __init__(self, workdir: Path, total: int, already: int, hooks: MonitorHooks):
        self.metrics, self.alarms = workdir / "metrics.jsonl", workdir / ALARMS
        self.total, self.hooks = total, hooks
        self.records_seen, self.alarms_seen = already, 0

    def follow(self) -> None:
        records = _lines(self.metrics)
        for record in records[self.records_seen:]:
            self.hooks.on_step(record["step"], self.total, record)
        self.records_seen = max(self.records_seen, len(records))
        alarms = _lines(self.alarms)
        for alarm in alarms[self.alarms_seen:]:
            self.hooks.on_alarm(alarm["detector"], alarm["step"], alarm["evidence"])
        self.alarms_seen = len(alarms)


def _lines(path: Path) -> list[dict]:
    """The file's complete JSON lines (rank 0 replaces metrics.jsonl whole and appends alarms line by line)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    lines = text.splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n") and line.strip()]


def failure(workdir: Path, returncode: int, world_size: int) -> str:
    """One line: which rank failed and how (from the launcher's summary), and that rank's last log line."""
    summary = (workdir / "launcher.log").read_text(errors="replace") if (workdir / "launcher.log").exists() else ""
    ranks = re.findall(r"rank\s*:\s*(\d+)", summary)
    codes = re.findall(r"exitcode\s*:\s*(-?\d+)", summary)
    rank = int(ranks[0]) if ranks else None
    how = ""
    if codes:
        code = int(codes[0])
        how = f" (killed by {signal.Signals(-code).name})" if code < 0 and -code in signal.valid_signals() \
            else f" (exit code {code})"
    last = _last_line(rank_log(workdir, rank)) if rank is not None else _last_line(workdir / "launcher.log")
    who = f"rank {rank} of {world_size}" if rank is not None else f"the launcher (exit code {returncode})"
    return f"train: {who} failed{how}; its last line: {last or '(nothing)'}"


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1][:300] if lines else ""
