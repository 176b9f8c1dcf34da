"""The trained demo family as artifacts: built once per (size, seed, recipe), in the artifact store when there is one.

Each member (pretrained, instruct, reasoning, reward) is published like any other checkpoint artifact -- a folder with
a completion marker that records its content fingerprint -- so other machines find it in the store instead of
training it again, and a member that was deleted or altered is noticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bai_core.demo.family import MANIFEST, MEMBERS, FamilyReport, Progress, build_family, recipe_id
from bai_core.fingerprint import cache_dir
from bai_core.storage import ArtifactStore


def family_key(size: str, seed: int) -> str:
    return f"families/{size}-seed{seed}-{recipe_id(size)}"


def member_key(size: str, seed: int, member: str) -> str:
    return f"{family_key(size, seed)}/{member}"


@dataclass(frozen=True)
class DemoFamily:
    root: Path  # holds one folder per member
    report: FamilyReport


def ensure_demo_family(size: str, seed: int, store: ArtifactStore | None = None,
                       progress: Progress | None = None) -> DemoFamily:
    """The family's local folder and report; trains only if neither the store nor this machine has it intact."""
    if store is not None and all(store.find(member_key(size, seed, m)) for m in MEMBERS):
        root = store.local_path(family_key(size, seed))
        for member in MEMBERS:
            store.materialize(member_key(size, seed, member), store.read_marker(member_key(size, seed, member)))
        if not (root / MANIFEST).is_file():
            (root / MANIFEST).write_text(store.get_text(f"{family_key(size, seed)}/{MANIFEST}"))
        return DemoFamily(root, FamilyReport(**json.loads((root / MANIFEST).read_text())))
    root = store.local_path(family_key(size, seed)) if store is not None else cache_dir() / family_key(size, seed)
    report = build_family(root, size, seed, overwrite=True, progress=progress)
    if store is not None:
        for member in MEMBERS:
            store.publish(member_key(size, seed, member),
                          {"kind": "bai-demo-member", "size": size, "seed": seed, "recipe": recipe_id(size),
                           "fingerprint": report.models[member]["fingerprint"]})
        store.put_text(f"{family_key(size, seed)}/{MANIFEST}", (root / MANIFEST).read_text())
    return DemoFamily(root, report)
