"""Output folders that appear only once complete.

Everything is written into a hidden temporary sibling (`.NAME.bai-tmp-PID-RANDOM`) on the same file system and
renamed to NAME at the very end, so a reader never sees a half-written checkpoint at NAME. A failure removes the
temporary folder; a process killed outright (SIGKILL) leaves it behind under its hidden name, and the next write
to the same NAME removes it once its owning process is gone.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bai_core.errors import BaiError

_MARK = ".bai-tmp-"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(final: Path) -> None:
    """Remove temporaries of `final` left by processes that no longer run (killed mid-write)."""
    if not final.parent.is_dir():
        return
    for candidate in final.parent.glob(f".{final.name}{_MARK}*"):
        pid_text = candidate.name.removeprefix(f".{final.name}{_MARK}").split("-", 1)[0]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            shutil.rmtree(candidate, ignore_errors=True)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file that readers see whole or not at all (a temporary sibling, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}{_MARK}{os.getpid()}")
    temporary.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(temporary, path)


def rename_over(source: Path, final: Path) -> None:
    """Rename the folder `source` to `final`, replacing what `final` holds: the old one is moved aside first (no
    rename replaces a non-empty folder), so until the second rename `source` still holds the new one whole."""
    aside = None
    if final.exists():
        aside = final.parent / f".{final.name}{_MARK}{os.getpid()}-old-{secrets.token_hex(4)}"
        os.rename(final, aside)
    os.rename(source, final)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


class AtomicFolder:
    """A temporary folder that becomes `final` (replacing it only when `overwrite`) once complete:

        with AtomicFolder(final) as staging:
            write into staging.path

    publishes it when the block ends, and removes it on any exception (a stop signal included), so `final` is
    never half-written."""

    def __init__(self, final: Path, overwrite: bool = False):
        self.final = final
        self.overwrite = overwrite
        self.check_target(final, overwrite)
        remove_stale_temporaries(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.path = final.parent / f".{final.name}{_MARK}{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()

    @staticmethod
    def check_target(final: Path, overwrite: bool) -> None:
        """Refuse a `final` that holds something already (unless `overwrite`) or is not a folder."""
        if final.exists() and not overwrite:
            raise BaiError(f"{final}: already exists (pass --overwrite to replace it)")
        if final.exists() and not final.is_dir():
            raise BaiError(f"{final}: exists and is not a folder")

    def __enter__(self) -> AtomicFolder:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.publish()
        else:
            self.discard()

    def publish(self) -> None:
        rename_over(self.path, self.final)  # `final` exists here only with overwrite

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def copy_folder(source: Path, target: Path) -> None:
    """Copy the files of `source` to `target`, which appears only once complete (replacing what was there)."""
    with AtomicFolder(target, overwrite=True) as staging:
        for path in source.iterdir():
            if path.is_file():
                shutil.copy2(path, staging.path / path.name)


@contextmanager
def atomic_folders(finals: list[Path], overwrite: bool = False) -> Iterator[list[Path]]:
    """Yield temporary folders for `finals`; publish them all on success, remove them all on any failure."""
    folders: list[AtomicFolder] = []
    try:
        for final in finals:
            folders.append(AtomicFolder(final, overwrite))
        yield [folder.path for folder in folders]
    except BaseException:
        for folder in folders:
            folder.discard()
        raise
    for folder in folders:
        folder.publish()
