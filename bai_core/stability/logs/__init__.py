"""Readers for the logs RL runs leave behind, recognised by their content (never by the file's name):

    trl-trainer-state   TRL's trainer_state.json (its log_history; max_steps is the plan)
    jsonl               a JSON object per line: bai's metrics.jsonl, verl's file logger ({"step", "data"}), a
                        wandb history export (wandb-history.jsonl, run.history(); OpenRLHF's `train/*` metrics)
    console             what a run prints: TRL's metric dicts between progress bars, OpenRLHF's `Global step N:
                        {...}` lines, verl's `step:N - key:value` lines (Ray prefixes, ANSI colours, np.float64(...)
                        values); also wandb's copy of it (files/output.log)
    csv                 a table with a step column: a wandb chart or history export (`<run> - <metric>` headers)
    tensorboard         event files, through the `tensorboard` package's own reader (`pip install 'bai[tensorboard]'`)

Each reader turns records into `Curves` (curves.py names the metrics). A file none of them reads is one line
saying what was found in it.
"""

from __future__ import annotations

from pathlib import Path

from bai_core.errors import BaiError
from bai_core.stability.curves import METRICS, Curves
from bai_core.stability.logs import console, jsonl, table, tensorboard, trainer_state


def read_log(path: Path, completions_per_step: float | None = None, run: str | None = None) -> Curves:
    """The curves in the log at `path` (a file, or a TensorBoard log folder). `completions_per_step`: what a
    step's points average over, where the log does not say (it overrides what the log says). `run`: which run of
    a table that holds several (a sweep's export); default the first."""
    path = Path(path)
    if not path.exists():
        raise BaiError(f"{path}: no such file")
    if tensorboard.is_event_log(path):
        curves = tensorboard.read(path)
    else:
        text = _text(path)
        reader = next((r for r in (trainer_state, jsonl, table, console) if r.recognises(text)), None)
        if reader is None:
            raise BaiError(f"{path}: not a log this reads: {console.what_is_in(text)}")
        if run is not None and reader is not table:
            raise BaiError(f"{path}: --run picks a run of a table that holds several; this is one run's log")
        curves = table.read(path, text, run) if reader is table else reader.read(path, text)
    if completions_per_step:
        curves.completions_per_step, curves.completions_source = completions_per_step, "--completions-per-step"
    if not curves.steps:
        found = sorted(curves.keys_seen)
        raise BaiError(f"{path}: a {curves.format} log with no training steps that have a response length, reward "
                       f"or entropy (looked for a step and one of {', '.join(METRICS['length'][:3])} / "
                       f"{', '.join(METRICS['reward'][:3])}; found "
                       + (f"{len(found)} keys: {', '.join(found[:8])}{', ...' if len(found) > 8 else ''})"
                          if found else "no metric names)"))
    return curves


def _text(path: Path) -> str:
    if path.is_dir():
        raise BaiError(f"{path}: a folder with no TensorBoard event files in it (give the log file)")
    try:
        return path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BaiError(f"{path}: a binary file that is not a TensorBoard event log") from None
    except PermissionError:
        raise BaiError(f"{path}: cannot read it (permission denied)") from None


__all__ = ["Curves", "read_log"]
