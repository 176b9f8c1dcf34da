"""TensorBoard event files (a `events.out.tfevents.*` file, or a log folder holding them), read with the
`tensorboard` package's own reader: an optional extra (`pip install 'bai[tensorboard]'`), not a parser of ours.
Scalars logged at the same step become one record (TRL names them `train/<metric>`)."""

from __future__ import annotations

from pathlib import Path

from bai_core.errors import BaiError
from bai_core.stability.curves import Curves

MAGIC = b"brain.Event"  # the first record of every event file names its version: "brain.Event:2"


def _event_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and "tfevents" in p.name)
    return [path]


def is_event_log(path: Path) -> bool:
    """By content: the file (or a file in the folder) starts with an event record naming its version."""
    for file in _event_files(path)[:1] if path.is_dir() else [path]:
        try:
            with file.open("rb") as f:
                if MAGIC in f.read(64):
                    return True
        except OSError:
            return False
    return False


def read(path: Path) -> Curves:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise BaiError(f"{path}: a TensorBoard event log; reading it needs the tensorboard extra: "
                       f"pip install 'bai[tensorboard]'") from None
    by_step: dict[int, dict] = {}
    for file in _event_files(path):
        accumulator = EventAccumulator(str(file), size_guidance={"scalars": 0})  # 0: keep every point
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            for event in accumulator.Scalars(tag):
                by_step.setdefault(int(event.step), {"step": int(event.step)})[tag] = event.value
    curves = Curves("tensorboard")
    for step in sorted(by_step):
        curves.add(by_step[step])
    return curves
