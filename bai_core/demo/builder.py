"""A demo family build in a process of its own, started on the kernels every build uses (`TRAINING_KERNELS`).

torch chooses its vector kernels, and MKL its code path, when they load, by the processor's features; a process
that has loaded them cannot switch. So a build that is asked for in any other process (the CLI's, a pipeline
stage's, a test's) runs in a child started with the switches set:

    python -m bai_core.demo.pinned_build --size SIZE --seed N --output DIR [--overwrite]

The child prints one line per progress report (`bai-build-progress ["phase", step, total]`), which the parent hands
to its progress callback, and writes the family atomically, as an in-process build does; the parent reads the report
from the folder once the child exits 0. A failure is the child's last line, as one error. A stop signal to the
parent stops the child, whose temporary folder goes with it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bai_core.demo.training import TRAINING_KERNELS
from bai_core.errors import BaiError

PROGRESS_MARK = "bai-build-progress "
POLL_SECONDS = 0.5


def kernels_pinned() -> bool:
    """Whether this process computes with the builds' kernels: it was started with the switches set (torch reads
    ATEN_CPU_CAPABILITY at its first kernel call; a process that ran one before the variable was set says so)."""
    if any(os.environ.get(name) != value for name, value in TRAINING_KERNELS.items()):
        return False
    import torch

    return torch.backends.cpu.get_cpu_capability() == "DEFAULT"


def pinned_environment() -> dict[str, str]:
    """This process's environment with the builds' kernel switches set."""
    return {**os.environ, **TRAINING_KERNELS}


def build_in_pinned_process(output: Path, size: str, seed: int, overwrite: bool,
                            progress: Callable[[str, int, int], None]) -> None:
    """Run `build_family` in a child on the pinned kernels, relaying its progress; returns once the family is at
    `output`, raises BaiError (its last line) if the child failed."""
    from bai_core.launcher import start, wait

    command = [sys.executable, "-m", "bai_core.demo.pinned_build", "--size", size, "--seed", str(seed),
               "--output", str(output), *(["--overwrite"] if overwrite else [])]
    with tempfile.TemporaryDirectory(prefix="bai-family-build-") as scratch:
        log = Path(scratch) / "build.log"
        child = start(command, log, env=pinned_environment())
        lines = _Lines(log)

        def relay() -> bool:
            for line in lines.new():
                if line.startswith(PROGRESS_MARK):
                    progress(*json.loads(line.removeprefix(PROGRESS_MARK)))
            return False

        wait(child, relay, POLL_SECONDS)
        relay()
        if child.returncode != 0:
            said = [line for line in lines.all if line.strip() and not line.startswith(PROGRESS_MARK)]
            last = said[-1].removeprefix("bai: error: ") if said else f"it exited {child.returncode} without a word"
            raise BaiError(f"the {size} demo family build stopped: {last}")


class _Lines:
    """The complete lines a growing log holds, read as they come."""

    def __init__(self, path: Path):
        self.path, self.offset, self.all = path, 0, []

    def new(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        lines = complete.decode(errors="replace").splitlines()
        self.all += lines
        return lines
