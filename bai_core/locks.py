"""Machine-wide locks, so two runs at once never build the same artifact twice.

Two `bai run` of one config (or a sweep beside a manual run) reach the same content-keyed artifact together. The
first takes the artifact's lock and builds it; the second waits, then finds it published and adopts it. Locks are
`flock`s on files under the bai cache folder: the kernel releases them when their process dies, even by SIGKILL, so a
killed run never leaves a lock behind.

Scope: one machine. Runs on different machines sharing an S3 store can still build the same artifact at the same
time; content keys make their results identical and the marker-last publish keeps each upload intact.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bai_core.fingerprint import cache_dir


@contextmanager
def exclusive(name: str, on_wait=None, folder: Path | None = None) -> Iterator[None]:
    """Hold the machine-wide lock called `name` (a file in `folder`, default the cache's locks/); `on_wait()` is
    called once if another process holds it now."""
    folder = folder or cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(name.encode()).hexdigest()[:32] + ".lock")
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
