"""Content fingerprints of checkpoint folders, memoized so a 50 GB checkpoint is hashed once, not every run.

A file's sha256 is remembered in a small SQLite table keyed by (device, inode, size, mtime): rewrite the file and it
is hashed again, while renaming it (as publishing an output folder does) keeps the memo. A folder's fingerprint is the sha256 of its relevant files' (name, size, sha256) list,
so it changes whenever the weights, config or tokenizer change, and never because of where the folder lives.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bai_core.io.checkpoint import CONFIG_FILE, INDEX_FILE, TOKENIZER_FILES

_BLOCK = 8 * 1024 * 1024


def cache_dir() -> Path:
    """Where bai keeps memo files: $BAI_CACHE_DIR, else $XDG_CACHE_HOME/bai, else ~/.cache/bai."""
    if os.environ.get("BAI_CACHE_DIR"):
        return Path(os.environ["BAI_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bai"


def fingerprinted_files(folder: Path) -> list[Path]:
    """The files that make a checkpoint what it is: weights, index, config and tokenizer files."""
    names = {CONFIG_FILE, INDEX_FILE, *TOKENIZER_FILES}
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.name in names or p.suffix == ".safetensors"))


class _Memo:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS file_sha256 (device INT, inode INT, size INT, mtime_ns INT, sha256 TEXT, "
            "PRIMARY KEY (device, inode))"
        )

    def get(self, key: tuple) -> str | None:
        row = self._db.execute(
            "SELECT sha256 FROM file_sha256 WHERE device=? AND inode=? AND size=? AND mtime_ns=?", key
        ).fetchone()
        return row[0] if row else None

    def put(self, key: tuple, digest: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO file_sha256 VALUES (?,?,?,?,?)", (*key, digest))

    def close(self) -> None:
        self._db.close()


def _stat_key(path: Path) -> tuple:
    st = path.stat()  # follows symlinks, so a Hugging Face cache snapshot is keyed by its blobs
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buffer = bytearray(_BLOCK)
        view = memoryview(buffer)
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def file_digests(paths: list[Path], workers: int | None = None) -> dict[Path, tuple[int, str]]:
    """path -> (size, sha256) for each file, memoized; missing digests hashed in parallel (hashlib releases the
    GIL)."""
    memo = _Memo(cache_dir() / "fingerprints-v2.sqlite")
    try:
        keys = {path: _stat_key(path) for path in paths}
        digests = {path: memo.get(key) for path, key in keys.items()}
        missing = [path for path, digest in digests.items() if digest is None]
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for path, digest in zip(missing, pool.map(file_sha256, missing)):
                digests[path] = digest
                memo.put(keys[path], digest)
    finally:
        memo.close()
    return {path: (keys[path][2], digests[path]) for path in paths}


def fingerprint_folders(folders: list[Path], workers: int | None = None) -> list[str]:
    """Fingerprint several checkpoint folders, hashing their files in parallel."""
    per_folder = [fingerprinted_files(folder) for folder in folders]
    digests = file_digests([path for files in per_folder for path in files], workers)
    results = []
    for files in per_folder:
        listing = [(p.name, *digests[p]) for p in files]
        results.append("sha256:" + hashlib.sha256(json.dumps(listing).encode()).hexdigest())
    return results


def fingerprint_folder(folder: Path) -> str:
    return fingerprint_folders([folder])[0]


def code_version(folder: Path, names: tuple[str, ...]) -> str:
    """A short hash of the source files whose code decides what a stage produces: editing one makes that stage's
    cached results stale (it is part of their cache keys)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:12]
