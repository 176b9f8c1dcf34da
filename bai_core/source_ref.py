"""A checkpoint source as written in a config, read once: a local folder, an `s3://` prefix, a Hugging Face hub id, or
a plug-in's scheme (`demo://...`). What each kind means is `sources.py`'s business; this only says which it is.

    /data/qwen-math, ./models/x, ~/ckpt, file://...   local
    s3://bucket/prefix                               s3
    Qwen/Qwen2.5-Math-1.5B[@revision], hf://...      hub (repo, revision)
    demo://demo/pretrained[@seed]                    scheme "demo" (bai_core/plugins.py)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bai_core import plugins
from bai_core.errors import BaiError

HUB_ID = re.compile(r"^(?:hf://)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")
LOCAL_PREFIXES = ("/", "./", "../", "~", "file://")


@dataclass(frozen=True)
class SourceRef:
    text: str
    kind: Literal["local", "s3", "hub", "scheme"]
    scheme: str | None = None    # kind "scheme": the plug-in's scheme name
    repo: str | None = None      # kind "hub"
    revision: str | None = None  # kind "hub": as written (a branch, tag or sha), if any

    @classmethod
    def parse(cls, text: str) -> SourceRef:
        """Which kind of source `text` is; a clear error when it is none, or reads as a local path with a typo."""
        if (scheme := plugins.scheme_of(text)) is not None and scheme in plugins.checkpoint_schemes():
            return cls(text, "scheme", scheme=scheme)
        if text.startswith("s3://"):
            return cls(text, "s3")
        if looks_local(text):
            return cls(text, "local")
        if Path(text.split("/", 1)[0]).expanduser().is_dir():
            # `mymodels/pretrained` where ./mymodels exists: a local path with a typo, not a hub id.
            raise BaiError(f"{text}: no such local folder ({Path(text).expanduser().resolve()}); "
                           f"{text.split('/', 1)[0]}/ exists here, so this is not taken for a hub id")
        if match := HUB_ID.match(text):
            return cls(text, "hub", repo=match["repo"], revision=match["revision"])
        schemes = "".join(f", {s.form}" for s in plugins.checkpoint_schemes().values())
        raise BaiError(f"{text}: not a local folder, s3:// URI or hub id (org/name[@revision]){schemes}")

    @property
    def explicit_hub(self) -> bool:
        """Written so that it can only be a hub id (hf://, or pinned to a revision)."""
        return self.kind == "hub" and (self.text.startswith("hf://") or self.revision is not None)


def looks_local(text: str) -> bool:
    return text.startswith(LOCAL_PREFIXES) or Path(text).expanduser().exists()


def could_be_source(text: str) -> bool:
    """Written like a checkpoint source, without looking further (config validation, on any machine): a registered
    scheme, s3://, hf://, a local path, or org/name."""
    return (plugins.scheme_of(text) is not None or text.startswith(("s3://", "hf://")) or looks_local(text)
            or "/" in text)
