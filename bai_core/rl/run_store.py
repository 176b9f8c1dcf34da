"""A train key's folder in the artifact store (`train/<key>/`), and what the stage, its ranks and its machines read
and write there: the one checkpoint a rerun resumes from, the verdict of a run a detector stopped, and, with
several machines, machine 0's meeting note and the other machines' RNG states.

Below the stage, the ranks, the worker and the machines, all of which use it; it imports none of them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from bai_core.errors import BaiError
from bai_core.fingerprint import fingerprint_folder
from bai_core.io.atomic import copy_folder
from bai_core.stability.detectors import DETECTOR_TITLES
from bai_core.storage import ArtifactStore

CHECKPOINT = "checkpoint"  # train/<key>/checkpoint: the last one saved, where a rerun of the key resumes
MEETING = "machines.json"


def publish_checkpoint(store: ArtifactStore, folder: str, key: str, trl_checkpoint: Path, step: int,
                       world_size: int = 1) -> None:
    """TRL's checkpoint (weights, optimizer, schedule, every rank's RNG state, step) as the run's one checkpoint in
    the store, where a rerun of the same key resumes from it."""
    if world_size > 1:  # the RNG states of other machines' ranks come through the store
        gather_rng_states(store, folder, trl_checkpoint, step, world_size)
    # Published whole beside the last one, then put in its place: a kill at any moment leaves one to resume from.
    spare = f"{folder}/{CHECKPOINT}.next"
    copy_folder(trl_checkpoint, store.local_path(spare))
    store.publish(spare, {"cache_key": key, "step": step, "fingerprint": fingerprint_folder(store.local_path(spare))})
    store.supersede(f"{folder}/{CHECKPOINT}", spare)


def find_checkpoint(store: ArtifactStore, folder: str) -> tuple[str, dict] | None:
    """(key, marker) of the run's latest complete checkpoint: `checkpoint`, or the `checkpoint.next` that a kill
    left complete beside it; None when the run has none."""
    found = [(key, marker) for key in (f"{folder}/{CHECKPOINT}", f"{folder}/{CHECKPOINT}.next")
             if (marker := store.find(key)) is not None]
    return max(found, key=lambda checkpoint: checkpoint[1]["step"], default=None)


def refuse_if_aborted(store: ArtifactStore, folder: str) -> None:
    """A run that `abort_on` stopped has its result: that verdict. A rerun of the same key says so again, instead
    of resuming only to stop a few steps later (change the settings, e.g. abort_on, to train on)."""
    try:
        aborted = json.loads(store.get_text(f"{folder}/verdicts.json")).get("aborted")
    except BaiError:
        return
    if aborted:
        name = DETECTOR_TITLES[aborted["detector"]]
        raise BaiError(f"train stopped at step {aborted['step']}: {name} detected ({aborted['reason']}); its "
                       f"checkpoint, metrics and verdicts are kept in {store.uri(folder)}")


def announce(store: ArtifactStore, folder: str, state: str, **fields) -> dict:
    """Machine 0's meeting note: `training` (with address, port, attempt, resume_step) or how it ended."""
    note = {**(read_meeting(store, folder) or {}), **fields, "state": state}
    store.put_text(f"{folder}/{MEETING}", json.dumps(note) + "\n")
    return note


def new_attempt() -> str:
    return uuid.uuid4().hex[:12]


def read_meeting(store: ArtifactStore, folder: str) -> dict | None:
    try:
        return json.loads(store.get_text(f"{folder}/{MEETING}"))
    except (BaiError, json.JSONDecodeError):
        return None


def rng_key(folder: str, step: int, name: str) -> str:
    return f"{folder}/rng/step-{step}/{name}"


def share_rng_states(store: ArtifactStore, folder: str, trl_checkpoint: Path, step: int) -> None:
    """On a machine other than 0: its ranks' RNG states, for machine 0 to put into the checkpoint it publishes."""
    for path in sorted(trl_checkpoint.glob("rng_state_*.pth")):
        store.put_bytes(rng_key(folder, step, path.name), path.read_bytes())


def gather_rng_states(store: ArtifactStore, folder: str, trl_checkpoint: Path, step: int, world_size: int) -> None:
    """On machine 0, before it publishes a checkpoint: every rank's RNG state in it (the other machines' from the
    store; they handed them over before the checkpoint barrier)."""
    for rank in range(world_size):
        name = f"rng_state_{rank}.pth"
        if not (trl_checkpoint / name).exists():
            (trl_checkpoint / name).write_bytes(store.get_bytes(rng_key(folder, step, name)))
