"""The train stage on several machines (`train.launch.machines` > 1): machine 0 leads, the others join.

Every machine runs the same train stage with the same inputs (a `bai-train` flow run each on the GPU pool, or
`bai run` on each Slurm node) and so computes the same key. Machine 0 runs the stage as on one machine: it takes
the lock, resumes from the store's checkpoint, starts its ranks, follows rank 0 and publishes. Before its ranks
start it writes `train/<key>/machines.json` to the store: where rank 0 listens (its address with
`main_address: auto`), which attempt this is, and the checkpoint step every rank resumes from. A joining machine
waits for that meeting note, fetches the same init, rewards, prompts and checkpoint from the store, starts its own
ranks with its machine rank, and returns the actor machine 0 publishes.

- A new attempt of machine 0 (a rerun after a failure) writes a new note; a machine still waiting on an old one
  stops its ranks and starts again with the new one.
- Machine 0 marks the note `finished`, `failed` or `stopped` when its ranks end; a joining machine then ends too,
  in one line that says which machine ended first.
- Checkpoints: each machine's first rank hands its ranks' RNG states to the store (`rng/step-<N>/`); machine 0 puts
  them into the checkpoint it publishes, so a rerun resumes every rank where it was.
"""

from __future__ import annotations

import shutil
import time

from bai_core import layout, progress
from bai_core.errors import BaiError
from bai_core.rl.run_store import find_checkpoint, read_meeting, refuse_if_aborted
from bai_core.storage import ArtifactStore

POLL_SECONDS = 1.0


def join_training(stage, machine: int):
    """Machine `machine` (> 0) of the train stage `stage`: train with machine 0, return the TrainRef it publishes."""

    launch = stage.settings.launch
    folder = layout.train_folder(stage.key)
    waiting_since, done_with = time.monotonic(), None
    progress.note(f"machine {machine} of {launch.machines}: waiting for machine 0 in {stage.store.uri(folder)}")
    while True:
        if (ref := stage.published()) is not None:
            return ref
        refuse_if_aborted(stage.store, folder)  # a run `abort_on` stopped has its verdict for a result
        note = read_meeting(stage.store, folder)
        if note and note["state"] == "training" and note["attempt"] != done_with:
            done_with = note["attempt"]
            if _train_with(stage, machine, note) == "finished":
                return _await_published(stage, folder, launch.timeout_s)
            waiting_since = time.monotonic()
            continue
        if time.monotonic() - waiting_since > launch.timeout_s:
            raise BaiError(f"train: machine {machine} of {launch.machines} waited {launch.timeout_s} s and machine 0 "
                           f"did not start training in {stage.store.uri(folder)} (train.launch.timeout_s)")
        progress.check_stop()
        time.sleep(POLL_SECONDS)


def _train_with(stage, machine: int, note: dict) -> str:
    """This machine's ranks, meeting machine 0 as its note says: "finished", or "again" when machine 0 started a
    new attempt meanwhile. One line when machine 0's attempt or this machine's ranks fail."""
    from bai_core.fingerprint import cache_dir
    from bai_core.launcher import start, wait
    from bai_core.rl.launch.config import Rendezvous, launch_command, shown
    from bai_core.rl.launch.ranks import failure
    from bai_core.rl.launch.worker import write_job
    from bai_core.rl.prompts import load_prompts
    from bai_core.rl.trainer import device

    settings, store, folder = stage.settings, stage.store, layout.train_folder(stage.key)
    workdir = cache_dir() / "train" / f"{stage.key[:24]}-machine-{machine}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    init, reward_paths = stage.local_inputs()
    resume_from = None
    if note.get("resume_step"):
        checkpoint = find_checkpoint(store, folder)
        if checkpoint is None or checkpoint[1]["step"] != note["resume_step"]:
            return "again"  # machine 0 moved on since it wrote the note; wait for its next one
        resume_from = store.materialize(*checkpoint)
    job = write_job(workdir / "job.json", init=init, reward_paths=reward_paths,
                    prompts=load_prompts(settings.prompts, stage.storage), settings=settings,
                    workdir=workdir, actor_output=workdir / "actor", resume_from=resume_from, storage=stage.storage,
                    folder=folder, key=stage.key)
    on_gpu = device() == "cuda"
    command = launch_command(settings.launch, Rendezvous(machine, note["address"], note["port"]), job, on_gpu)
    progress.note(f"machine {machine} of {settings.launch.machines}: training with machine 0 at {note['address']}:"
                  f"{note['port']} (attempt {note['attempt']}): {shown(command)}")
    def machine_0_moved_on() -> bool:
        now = read_meeting(store, folder) or note
        return now["attempt"] != note["attempt"] or now["state"] in ("failed", "stopped")

    launcher = start(command, workdir / "launcher.log")
    wait(launcher, machine_0_moved_on, POLL_SECONDS)
    if launcher.returncode == 0:
        return "finished"
    now = _settled(store, folder, note)
    if now["attempt"] != note["attempt"]:
        return "again"
    if now["state"] in ("failed", "stopped"):
        raise BaiError(f"train: machine 0 {now['state']} (attempt {note['attempt']}): {now.get('reason', '')}; "
                       f"machine {machine}'s ranks stopped with it")
    raise BaiError(failure(workdir, launcher.returncode, settings.launch.world_size))


def _settled(store: ArtifactStore, folder: str, note: dict, wait_s: float = 10) -> dict:
    """The note once machine 0 has said how its attempt ended: when machine 0's ranks fail, this machine's see their
    peers vanish a moment before machine 0 writes why."""
    deadline = time.monotonic() + wait_s
    while True:
        now = read_meeting(store, folder) or note
        if now["attempt"] != note["attempt"] or now["state"] != "training" or time.monotonic() > deadline:
            return now
        time.sleep(POLL_SECONDS)


def _await_published(stage, folder: str, timeout_s: float):
    """Machine 0 publishes the actor a moment after the ranks end (or, when `abort_on` stopped them, the verdict)."""

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (ref := stage.published()) is not None:
            return ref
        refuse_if_aborted(stage.store, folder)
        note = read_meeting(stage.store, folder) or {}
        if note.get("state") in ("failed", "stopped"):
            raise BaiError(f"train: machine 0 {note['state']} after the ranks finished: {note.get('reason', '')}")
        progress.check_stop()
        time.sleep(POLL_SECONDS)
    raise BaiError(f"train: the ranks finished, but machine 0 published no actor in {stage.store.uri(folder)} "
                   f"within {timeout_s} s")
