"""What the stages that start other processes share (the train stage's ranks, a joining machine's ranks,
data-parallel scoring): a free port to meet on, starting a launcher with its output in a log, waiting on it while
hearing stop signals, and stopping it with everything it started."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bai_core import progress

GRACE_SECONDS = 5  # after SIGTERM, before what is left is killed


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def stop_ranks(launcher: subprocess.Popen) -> None:
    """SIGTERM to the launcher (it passes it to the ranks), then SIGKILL to whatever of the tree is left."""
    import psutil

    try:
        tree = [launcher.pid, *(p.pid for p in psutil.Process(launcher.pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        tree = []
    if launcher.poll() is None:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    for pid in tree:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    try:
        launcher.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The launcher, in a session of its own (a signal to the stage does not reach it twice), writing to `log`;
    in `env` if given, else this process's environment."""
    with open(log, "w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)


def wait(launcher: subprocess.Popen, each_poll: Callable[[], bool], poll_s: float) -> None:
    """Until the launcher exits, or `each_poll()` returns True (then it is stopped). Stop signals are heard between
    polls; whatever ends the wait with an exception (a signal, an error of `each_poll`) stops the launcher's tree."""
    try:
        while launcher.poll() is None:
            progress.check_stop()
            if each_poll():
                stop_ranks(launcher)
                return
            time.sleep(poll_s)
    except BaseException:
        stop_ranks(launcher)
        raise
