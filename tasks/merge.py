"""Prefect tasks over `bai_core.pipeline`: fetch and the two merge stages, with content-keyed caching.

Caching, and why it is built this way:
- The cache key of a merge task is `bai_core.pipeline.stage{1,2}_key`: input fingerprints + the stage's parameters
  + the merge engine's version. Never paths, never Prefect's per-run default.
- Records live in the run's result storage (beside the artifacts: a local folder, or S3), so a cache hit survives
  restarts and is shared by workers on other machines.
- A record is only trusted while the artifact it points to is intact: before calling a merge task the flow checks
  the artifact (memoized fingerprints or an S3 listing, no checkpoint bytes read) and, if it is missing or altered,
  calls the task with `refresh_cache=True`, so it recomputes and overwrites the stale record.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import CacheKeyFnPolicy

from bai_core import pipeline
from bai_core.config import MergeSettings, StorageConfig
from bai_core.errors import BaiError
from bai_core.pipeline import ArtifactRef, CheckpointRef
from tasks.artifacts import ProgressArtifact


def _not_a_user_error(task, task_run, state) -> bool:
    """Retry transient failures (network, S3 hiccups), not mistakes in the input that a retry cannot fix."""
    try:
        state.result()
    except BaiError:
        return False
    except Exception:
        return True
    return False


def _key1(instruct: dict, reasoning: dict, merge) -> str:
    return pipeline.stage1_key(CheckpointRef.model_validate(instruct), CheckpointRef.model_validate(reasoning),
                               MergeSettings.model_validate(merge))


def _key2(pretrained: dict, sft: dict, merge) -> str:
    return pipeline.stage2_key(CheckpointRef.model_validate(pretrained), ArtifactRef.model_validate(sft),
                               MergeSettings.model_validate(merge))


def _stage1_key(context, inputs) -> str:
    return "bai-sft-" + _key1(inputs["instruct"], inputs["reasoning"], inputs["merge"])


def _stage2_key(context, inputs) -> str:
    return "bai-bai-" + _key2(inputs["pretrained"], inputs["sft"], inputs["merge"])


def _merge_progress(description: str) -> ProgressArtifact:
    """The UI's bar follows the merge's bytes; fingerprinting the inputs first is not shown there."""
    return ProgressArtifact(description, lambda phase, done, total: 100.0 * done / total
                            if phase == "merge" and total else None)


@task(name="fetch-checkpoint", task_run_name="fetch-{role}", retries=2, retry_delay_seconds=2,
      retry_condition_fn=_not_a_user_error)
def fetch_checkpoint(role: str, source: str, storage: StorageConfig) -> dict:
    """Resolve a source to a local checkpoint (downloading into the content-keyed cache if needed)."""
    return pipeline.fetch_checkpoint(role, source, storage).model_dump()


@task(name="merge-stage1", cache_policy=CacheKeyFnPolicy(cache_key_fn=_stage1_key), persist_result=True,
      result_serializer="json", retries=1, retry_condition_fn=_not_a_user_error)
def merge_stage1(instruct: dict, reasoning: dict, merge: MergeSettings, storage: StorageConfig) -> dict:
    """M_sft = w * instruct + (1 - w) * reasoning, published to the artifact store."""
    w = merge.instruct_weight
    on_progress = _merge_progress(f"stage 1: {w:g} × instruct + {1 - w:g} × reasoning")
    ref = pipeline.merge_stage1(CheckpointRef.model_validate(instruct), CheckpointRef.model_validate(reasoning),
                                merge, storage, on_progress)
    return ref.model_dump()


@task(name="merge-stage2", cache_policy=CacheKeyFnPolicy(cache_key_fn=_stage2_key), persist_result=True,
      result_serializer="json", retries=1, retry_condition_fn=_not_a_user_error)
def merge_stage2(pretrained: dict, sft: dict, merge: MergeSettings, storage: StorageConfig) -> dict:
    """M_bai = alpha * pretrained + (1 - alpha) * M_sft, published to the artifact store."""
    on_progress = _merge_progress(f"stage 2: {merge.alpha:g} × pretrained + {1 - merge.alpha:g} × M_sft")
    ref = pipeline.merge_stage2(CheckpointRef.model_validate(pretrained), ArtifactRef.model_validate(sft),
                                merge, storage, on_progress)
    return ref.model_dump()


def stage1_is_published(instruct: dict, reasoning: dict, merge: MergeSettings, storage: StorageConfig) -> bool:
    """Is stage 1's artifact for these inputs intact? (The flow asks before trusting a cache record.)"""
    return pipeline.published(pipeline.open_store(storage), "sft", _key1(instruct, reasoning, merge)) is not None


def stage2_is_published(pretrained: dict, sft: dict, merge: MergeSettings, storage: StorageConfig) -> bool:
    return pipeline.published(pipeline.open_store(storage), "bai", _key2(pretrained, sft, merge)) is not None
