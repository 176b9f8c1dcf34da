"""The demo family as artifacts: the shipped one, or one built once per (size, seed, recipe), in the artifact store
when there is one.

Each member (pretrained, instruct, reasoning, reward) is published like any other checkpoint artifact -- a folder with
a completion marker that records its content fingerprint -- so other machines find it in the store instead of
training it again, and a member that was deleted or altered is noticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bai_core import layout
from bai_core import progress as progress_events
from bai_core.artifact_stage import ArtifactStage, run_stage
from bai_core.demo.family import MANIFEST, MEMBERS, FamilyReport, build_family, cached_family, recipe_id
from bai_core.demo.members import Progress
from bai_core.demo.shipped import shipped_family, shipped_folder
from bai_core.errors import BaiError
from bai_core.fingerprint import cache_dir
from bai_core.io.atomic import copy_folder
from bai_core.locks import exclusive
from bai_core.storage import ArtifactStore


def family_key(size: str, seed: int) -> str:
    return layout.family_folder(size, seed, recipe_id(size))


def member_key(size: str, seed: int, member: str) -> str:
    return f"{family_key(size, seed)}/{member}"


@dataclass(frozen=True)
class DemoFamily:
    root: Path  # holds one folder per member
    report: FamilyReport
    origin: str = "store"  # store (found published there), shipped (bai's own), machine (this machine's cache),
    # or trained (by this call)


def ensure_demo_family(size: str, seed: int, store: ArtifactStore | None = None,
                       progress: Progress | None = None) -> DemoFamily:
    """The family's local folder and report, published to `store` if one is given (see `FamilyStage`); without a
    store, the shipped family or this machine's cached one, trained only if neither has it."""
    if store is not None:
        family, _ = run_stage(FamilyStage(size, seed, store, progress))
        return family
    if (report := shipped_family(size, seed)) is not None:
        return DemoFamily(shipped_folder(size, seed), report, "shipped")
    with exclusive(_lock_name(size, seed), on_wait=_waiting(size)):
        return _trained(size, seed, progress)


class FamilyStage(ArtifactStage[DemoFamily]):
    """The demo family in the store: found there, else the family shipped with bai (verified file by file), else
    one this machine trained before; trained only if none of them has it.

    A family is trained in this machine's cache and published from there, so a family built for one store (say a
    local folder) is uploaded to another (say S3) instead of being trained again. Its key is the recipe's id, size
    and seed; it is published as four member artifacts and the report beside them (written last)."""

    def __init__(self, size: str, seed: int, store: ArtifactStore, progress: Progress | None = None):
        self.size, self.seed, self.store, self.progress = size, seed, store, progress

    def compute_key(self) -> str:
        return family_key(self.size, self.seed)

    def folder(self) -> str:
        return self.key

    def lock_name(self) -> str:
        return _lock_name(self.size, self.seed)  # machine-wide: whatever the store, it trains in this machine's cache

    def published(self) -> DemoFamily | None:
        return _from_store(self.store, self.size, self.seed)

    def build(self) -> DemoFamily:
        if (report := shipped_family(self.size, self.seed)) is not None:
            return _published(self.store, self.size, self.seed, shipped_folder(self.size, self.seed), report,
                              "shipped")
        family = _trained(self.size, self.seed, self.progress)
        return _published(self.store, self.size, self.seed, family.root, family.report, family.origin)


def _lock_name(size: str, seed: int) -> str:
    return f"demo-family:{family_key(size, seed)}"


def _waiting(size: str):
    return lambda: progress_events.note(f"waiting for another run building the {size} demo family")


def _trained(size: str, seed: int, progress: Progress | None) -> DemoFamily:
    """The family in this machine's cache: found there, or trained now."""
    built = cache_dir() / family_key(size, seed)
    origin = "machine" if cached_family(built, size, seed) is not None else "trained"
    return DemoFamily(built, build_family(built, size, seed, overwrite=True, progress=progress), origin)


def _published(store: ArtifactStore, size: str, seed: int, folder: Path, report: FamilyReport,
               origin: str) -> DemoFamily:
    """The family in `folder`, published member by member to the store."""
    root = store.local_path(family_key(size, seed))
    for member in MEMBERS:
        if store.find(member_key(size, seed, member)) is None:
            copy_folder(folder / member, store.local_path(member_key(size, seed, member)))
            store.publish(member_key(size, seed, member),
                          {"kind": "bai-demo-member", "size": size, "seed": seed, "recipe": recipe_id(size),
                           "fingerprint": report.models[member]["fingerprint"]})
    store.put_text(f"{family_key(size, seed)}/{MANIFEST}", (folder / MANIFEST).read_text())
    if not store.is_local:
        (root / MANIFEST).write_text((folder / MANIFEST).read_text())
    return DemoFamily(root, report, origin)


def _from_store(store: ArtifactStore, size: str, seed: int) -> DemoFamily | None:
    """The family as the store holds it (downloaded to this machine if needed), or None if any member is missing."""
    if (markers := _markers(store, size, seed)) is None:
        return None
    root = store.local_path(family_key(size, seed))
    for member, marker in markers.items():
        store.materialize(member_key(size, seed, member), marker)
    if not (root / MANIFEST).is_file():
        (root / MANIFEST).write_text(store.get_text(f"{family_key(size, seed)}/{MANIFEST}"))
    return DemoFamily(root, FamilyReport(**json.loads((root / MANIFEST).read_text())))


def _markers(store: ArtifactStore, size: str, seed: int) -> dict | None:
    """member -> marker when every member is published intact and the report beside them (written last), else None."""
    markers = {member: store.find(member_key(size, seed, member)) for member in MEMBERS}
    if not all(markers.values()):
        return None
    try:
        store.get_bytes(f"{family_key(size, seed)}/{MANIFEST}")
    except BaiError:
        return None
    return markers
