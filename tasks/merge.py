"""Prefect tasks over the library's fetch and its two merge stages (`bai_core.merge.stage`).

A merge's cache is decided by the library (`run_stage`: its key, its marker in the store); the task shows a
progress bar while it merges and finishes Cached, Adopted or Completed (tasks/stage.py).
"""

from __future__ import annotations

from prefect import task

from bai.tasks.artifacts import ProgressArtifact
from bai.tasks.stage import STAGE_TASK, finished, not_a_user_error
from bai_core import sources
from bai_core.artifact_stage import run_stage
from bai_core.merge.config import MergeSettings
from bai_core.merge.stage import ArtifactRef, BaiMerge, SftMerge, tell
from bai_core.sources import CheckpointRef
from bai_core.storage import StorageConfig


def _merge_progress(description: str) -> ProgressArtifact:
    """The UI's bar follows the merge's bytes; fingerprinting the inputs first is not shown there."""
    return ProgressArtifact(description, lambda phase, done, total: 100.0 * done / total
                            if phase == "merge" and total else None)


@task(name="fetch-checkpoint", task_run_name="fetch-{role}", retries=2, retry_delay_seconds=2,
      retry_condition_fn=not_a_user_error)
def fetch_checkpoint(role: str, source: str, storage: StorageConfig) -> dict:
    """Resolve a source to a local checkpoint (downloading into the content-keyed cache if needed)."""
    return sources.fetch_checkpoint(role, source, storage).model_dump()


@task(name="merge-stage1", retries=1, retry_condition_fn=not_a_user_error, **STAGE_TASK)
def merge_stage1(instruct: dict, reasoning: dict, merge: MergeSettings, storage: StorageConfig):
    """M_sft = w * instruct + (1 - w) * reasoning, published to the artifact store."""
    w = merge.instruct_weight
    stage = SftMerge(CheckpointRef.model_validate(instruct), CheckpointRef.model_validate(reasoning), merge, storage,
                     _merge_progress(f"stage 1: {w:g} × instruct + {1 - w:g} × reasoning"))
    ref, how = run_stage(stage)
    tell(stage, ref, how)
    return finished(ref, how, stage.damaged)


@task(name="merge-stage2", retries=1, retry_condition_fn=not_a_user_error, **STAGE_TASK)
def merge_stage2(pretrained: dict, sft: dict, merge: MergeSettings, storage: StorageConfig):
    """M_bai = alpha * pretrained + (1 - alpha) * M_sft, published to the artifact store."""
    stage = BaiMerge(CheckpointRef.model_validate(pretrained), ArtifactRef.model_validate(sft), merge, storage,
                     _merge_progress(f"stage 2: {merge.alpha:g} × pretrained + {1 - merge.alpha:g} × M_sft"))
    ref, how = run_stage(stage)
    tell(stage, ref, how)
    return finished(ref, how, stage.damaged)
