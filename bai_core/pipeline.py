"""The pipeline's stages as plain functions (no Prefect): fetch a checkpoint, merge stage 1, merge stage 2.

Each returns a small JSON-able reference -- where the artifact is, its content fingerprint, the parameters that made
it -- never tensors. A merge stage's cache key is a hash of its inputs' fingerprints, its own parameters and the merge
engine's version; its artifact is published under that key. So the orchestrator can key its cache on the same value,
and a stage whose key is already published intact adopts that artifact instead of merging again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from bai_core import progress
from bai_core.config import MergeSettings, Stage1Config, Stage2Config, StorageConfig
from bai_core.errors import BaiError
from bai_core.fingerprint import fingerprint_folder
from bai_core.locks import exclusive
from bai_core.merge import bai as bai_merge_module
from bai_core.merge.bai import ENGINE_VERSION, Progress
from bai_core.sources import fetch
from bai_core.storage import ArtifactStore


class CheckpointRef(BaseModel):
    """A fetched input checkpoint: its source and content fingerprint (valid on any machine that can fetch it)."""

    role: str
    source: str
    fingerprint: str
    revision: str | None = None


class ArtifactRef(BaseModel):
    """A published merge: its key, URI in the artifact store, content fingerprint and parameters."""

    stage: str
    key: str
    uri: str
    fingerprint: str
    parameters: dict
    built: bool = False  # True when this call merged it; False when it was found published (by another run)


def open_store(storage: StorageConfig) -> ArtifactStore:
    return ArtifactStore(storage.uri, storage.endpoint_url)


def fetch_checkpoint(role: str, source: str, storage: StorageConfig) -> CheckpointRef:
    fetched = fetch(source, storage.endpoint_url, open_store(storage))
    return CheckpointRef(role=role, source=source, fingerprint=fetched.fingerprint, revision=fetched.revision)


def local_checkpoint(ref: CheckpointRef, storage: StorageConfig) -> Path:
    """The checkpoint on this machine (fetching it here if needed), refusing content that changed since its fetch."""
    return local_model(ref.source, ref.fingerprint, storage)


def local_model(source: str, fingerprint: str, storage: StorageConfig,
                store_key: str | None = None) -> Path:
    """A model of this run on this machine: an artifact of the store under `store_key` (a merge, the RL actor),
    materialized here if needed, or a fetched source whose content must not have changed since this run's fetch."""
    store = open_store(storage)
    if store_key is not None:
        marker = store.find(store_key)
        if marker is None:
            raise BaiError(f"{source}: the artifact is missing or altered; run the pipeline again")
        return store.materialize(store_key, marker)
    fetched = fetch(source, storage.endpoint_url, store)
    if fetched.fingerprint != fingerprint:
        raise BaiError(f"{source}: content changed since it was fetched in this run; run the pipeline again")
    return fetched.path


def _donors(merge: MergeSettings) -> tuple[str, str]:
    """Tokenizer donors of (stage 1, stage 2). M_sft carries the instruct or reasoning tokenizer into stage 2."""
    if merge.tokenizer_from == "pretrained":
        return "reasoning", "pretrained"
    return merge.tokenizer_from, "sft"


def _key(payload: dict) -> str:
    return hashlib.sha256(json.dumps({**payload, "engine": ENGINE_VERSION}, sort_keys=True).encode()).hexdigest()


def stage1_parameters(merge: MergeSettings) -> dict:
    return {"instruct_weight": merge.instruct_weight, "dtype": merge.dtype, "tokenizer_from": _donors(merge)[0],
            "max_shard_size": int(merge.max_shard_size)}


def stage2_parameters(merge: MergeSettings) -> dict:
    return {"alpha": merge.alpha, "dtype": merge.dtype, "tokenizer_from": _donors(merge)[1],
            "max_shard_size": int(merge.max_shard_size)}


def stage1_key(instruct: CheckpointRef, reasoning: CheckpointRef, merge: MergeSettings) -> str:
    return _key({"stage": "sft", "instruct": instruct.fingerprint, "reasoning": reasoning.fingerprint,
                 **stage1_parameters(merge)})


def stage2_key(pretrained: CheckpointRef, sft: ArtifactRef, merge: MergeSettings) -> str:
    return _key({"stage": "bai", "pretrained": pretrained.fingerprint, "sft": sft.fingerprint,
                 **stage2_parameters(merge)})


def artifact_key(stage: str, key: str) -> str:
    return f"merges/{stage}-{key[:24]}"


def published(store: ArtifactStore, stage: str, key: str) -> ArtifactRef | None:
    """The intact published artifact for this key, or None if it is missing, partial or altered."""
    marker = store.find(artifact_key(stage, key))
    if marker is None or marker.get("cache_key") != key:
        return None
    return _ref(store, stage, key, marker)


def _ref(store: ArtifactStore, stage: str, key: str, marker: dict) -> ArtifactRef:
    return ArtifactRef(stage=stage, key=key, uri=store.uri(artifact_key(stage, key)),
                       fingerprint=marker["fingerprint"], parameters=marker["parameters"])


def merge_stage1(instruct: CheckpointRef, reasoning: CheckpointRef, merge: MergeSettings, storage: StorageConfig,
                 progress: Progress | None = None) -> ArtifactRef:
    store = open_store(storage)
    parameters = stage1_parameters(merge)

    def build(output: Path) -> None:
        config = Stage1Config(instruct=local_checkpoint(instruct, storage),
                              reasoning=local_checkpoint(reasoning, storage), output=output, overwrite=True,
                              **parameters)
        bai_merge_module.merge_stage1(config, progress)

    ref = _adopt_or_build(store, "sft", stage1_key(instruct, reasoning, merge), parameters,
                          {"instruct": instruct, "reasoning": reasoning}, build)
    w = merge.instruct_weight
    _tell(f"M_sft = {w:g} * instruct + {1 - w:g} * reasoning", ref)
    return ref


def merge_stage2(pretrained: CheckpointRef, sft: ArtifactRef, merge: MergeSettings, storage: StorageConfig,
                 progress: Progress | None = None) -> ArtifactRef:
    store = open_store(storage)
    parameters = stage2_parameters(merge)

    def build(output: Path) -> None:
        sft_marker = store.find(artifact_key("sft", sft.key))
        if sft_marker is None:
            raise BaiError(f"{sft.uri}: the stage-1 artifact is missing or altered; run the pipeline again")
        config = Stage2Config(pretrained=local_checkpoint(pretrained, storage),
                              sft=store.materialize(artifact_key("sft", sft.key), sft_marker),
                              output=output, overwrite=True, **parameters)
        bai_merge_module.merge_stage2(config, progress)

    ref = _adopt_or_build(store, "bai", stage2_key(pretrained, sft, merge), parameters,
                          {"pretrained": pretrained, "sft": sft}, build)
    _tell(f"M_bai = {merge.alpha:g} * pretrained + {1 - merge.alpha:g} * M_sft", ref)
    return ref


def _tell(formula: str, ref: ArtifactRef) -> None:
    how = "merged" if ref.built else "found already published"
    progress.note(f"{formula}: {how} ({ref.parameters['dtype']}, {ref.fingerprint[:19]}) -> {ref.uri}")


def _adopt_or_build(store: ArtifactStore, stage: str, key: str, parameters: dict, inputs: dict,
                    build: Callable[[Path], None]) -> ArtifactRef:
    """The published artifact for `key` if it is intact; otherwise build it in the local working copy and publish.

    Under the artifact's lock: a second run that wants the same artifact waits for the first and adopts its result."""
    if (ref := published(store, stage, key)) is not None:
        return ref
    name = artifact_key(stage, key)
    with exclusive(f"{store.url}/{name}", on_wait=lambda: progress.note(f"waiting for another run building {name}")):
        if (ref := published(store, stage, key)) is not None:
            return ref
        output = store.local_path(name)
        build(output)
        return _publish(store, stage, key, output, parameters, inputs)


def _publish(store: ArtifactStore, stage: str, key: str, folder: Path, parameters: dict, inputs: dict) -> ArtifactRef:
    marker = {
        "cache_key": key,
        "stage": stage,
        "fingerprint": fingerprint_folder(folder),
        "parameters": parameters,
        "inputs": {role: {"source": getattr(ref, "source", None) or ref.uri, "fingerprint": ref.fingerprint}
                   for role, ref in inputs.items()},
    }
    marker = store.publish(artifact_key(stage, key), marker)
    return _ref(store, stage, key, marker).model_copy(update={"built": True})
