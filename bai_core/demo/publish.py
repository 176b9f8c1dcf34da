"""The trained demo family as artifacts: built once per (size, seed, recipe), in the artifact store when there is one.

Each member (pretrained, instruct, reasoning, reward) is published like any other checkpoint artifact -- a folder with
a completion marker that records its content fingerprint -- so other machines find it in the store instead of
training it again, and a member that was deleted or altered is noticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bai_core import progress as progress_events
from bai_core.demo.family import MANIFEST, MEMBERS, FamilyReport, Progress, build_family, recipe_id
from bai_core.fingerprint import cache_dir
from bai_core.io.atomic import copy_folder
from bai_core.locks import exclusive
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
    """The family's local folder and report. Trains only if neither the store nor this machine has it intact.

    The family is built in this machine's cache and published from there, so a family built for one store (say a
    local folder) is uploaded to another (say S3) instead of being trained again. Under a lock: two runs that need
    the same family at once train it once."""
    if store is not None and (found := _from_store(store, size, seed)) is not None:
        return found
    with exclusive(f"demo-family:{family_key(size, seed)}",
                   on_wait=lambda: progress_events.note(f"waiting for another run building the {size} demo family")):
        if store is not None and (found := _from_store(store, size, seed)) is not None:
            return found
        built = cache_dir() / family_key(size, seed)
        report = build_family(built, size, seed, overwrite=True, progress=progress)
        if store is None:
            return DemoFamily(built, report)
        root = store.local_path(family_key(size, seed))
        for member in MEMBERS:
            if store.find(member_key(size, seed, member)) is None:
                copy_folder(built / member, store.local_path(member_key(size, seed, member)))
                store.publish(member_key(size, seed, member),
                              {"kind": "bai-demo-member", "size": size, "seed": seed, "recipe": recipe_id(size),
                               "fingerprint": report.models[member]["fingerprint"]})
        store.put_text(f"{family_key(size, seed)}/{MANIFEST}", (built / MANIFEST).read_text())
        if not store.is_local:
            (root / MANIFEST).write_text((built / MANIFEST).read_text())
        return DemoFamily(root, report)


def _from_store(store: ArtifactStore, size: str, seed: int) -> DemoFamily | None:
    """The family as the store holds it (downloaded to this machine if needed), or None if any member is missing."""
    markers = {member: store.find(member_key(size, seed, member)) for member in MEMBERS}
    if not all(markers.values()):
        return None
    root = store.local_path(family_key(size, seed))
    for member, marker in markers.items():
        store.materialize(member_key(size, seed, member), marker)
    if not (root / MANIFEST).is_file():
        (root / MANIFEST).write_text(store.get_text(f"{family_key(size, seed)}/{MANIFEST}"))
    return DemoFamily(root, FamilyReport(**json.loads((root / MANIFEST).read_text())))

