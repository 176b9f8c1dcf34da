"""What the stages that start other processes share (the train stage's ranks, data-parallel scoring): a free port
to meet on, and stopping a launcher with everything it started."""

from __future__ import annotations

import signal
import socket
import subprocess

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
