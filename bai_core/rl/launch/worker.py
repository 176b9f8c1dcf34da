"""One rank of a train stage on several processes: `python -m bai_core.rl.launch.worker JOB.json`.

`accelerate launch` (or torchrun, srun, a Kubernetes pod: anything that sets RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT) starts one per rank. Every rank trains with TRL as the single-process stage does; rank 0 alone writes
what the stage publishes: metrics.jsonl (locally, where the stage's own process follows it, and in the store),
each checkpoint (once every rank has written its RNG state into it), the alarms, the actor and `outcome.json`.
Each rank's output goes to `rank-<N>.log` in the work folder, so a failed rank can be named with its last line.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from bai_core.rl.config import TrainSettings
from bai_core.rl.metrics import MetricsLog, MonitorHooks
from bai_core.rl.prompts import PromptSet
from bai_core.rl.run_store import publish_checkpoint, share_rng_states
from bai_core.storage import StorageConfig, open_store

OUTCOME = "outcome.json"
ALARMS = "alarms.jsonl"


def rank_log(workdir: Path, rank: int) -> Path:
    return workdir / f"rank-{rank}.log"


def write_job(path: Path, *, init: Path, reward_paths: dict[str, Path], prompts: PromptSet, settings: TrainSettings,
              workdir: Path, actor_output: Path, resume_from: Path | None, storage: StorageConfig, folder: str,
              key: str) -> Path:
    job = {"init": str(init), "reward_paths": {name: str(p) for name, p in reward_paths.items()},
           "prompts": asdict(prompts), "settings": settings.model_dump(mode="json"), "workdir": str(workdir),
           "actor_output": str(actor_output), "resume_from": str(resume_from) if resume_from else None,
           "storage": storage.model_dump(mode="json"), "folder": folder, "key": key}
    path.write_text(json.dumps(job))
    return path


def main(job_file: str) -> int:
    job = json.loads(Path(job_file).read_text())
    rank = int(os.environ.get("RANK", "0"))
    workdir = Path(job["workdir"])
    log = open(rank_log(workdir, rank), "a", buffering=1)
    os.dup2(log.fileno(), sys.stdout.fileno())
    os.dup2(log.fileno(), sys.stderr.fileno())

    from bai_core.rl.trainer import run_training

    settings = TrainSettings.model_validate(job["settings"])
    prompts = PromptSet(**job["prompts"])
    folder, key = job["folder"], job["key"]
    if rank == 0:
        store = open_store(StorageConfig.model_validate(job["storage"]))
        metrics = MetricsLog.following(workdir / "metrics.jsonl",
                                       lambda data: store.put_bytes(f"{folder}/metrics.jsonl", data))

        def alarm(detector: str, step: int, evidence: dict) -> None:
            with open(workdir / ALARMS, "a") as alarms:
                alarms.write(json.dumps({"detector": detector, "step": step, "evidence": evidence}) + "\n")

        def checkpoint_saved(trl_checkpoint: Path, step: int) -> None:
            publish_checkpoint(store, folder, key, trl_checkpoint, step, settings.launch.world_size)

        hooks = MonitorHooks(on_alarm=alarm)
    else:  # the others train alike and publish nothing but, from another machine, their RNG states
        metrics = MetricsLog(workdir / f"metrics-rank-{rank}.jsonl")
        hooks, checkpoint_saved = MonitorHooks(), lambda folder, step: None
        if settings.launch.machines > 1 and int(os.environ.get("LOCAL_RANK", "0")) == 0:
            store = open_store(StorageConfig.model_validate(job["storage"]))

            def checkpoint_saved(trl_checkpoint: Path, step: int) -> None:
                share_rng_states(store, folder, trl_checkpoint, step)
    outcome = run_training(Path(job["init"]), {n: Path(p) for n, p in job["reward_paths"].items()}, prompts,
                           settings, workdir / "trl", Path(job["actor_output"]), metrics, hooks, checkpoint_saved,
                           Path(job["resume_from"]) if job["resume_from"] else None)
    if rank == 0:
        (workdir / OUTCOME).write_text(json.dumps({"steps": outcome.steps, "seconds": outcome.seconds,
                                                   "aborted": outcome.aborted, "device": outcome.device,
                                                   "trl_settings": outcome.trl_settings}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
