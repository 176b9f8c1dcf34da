"""The two merges as pipeline stages (no Prefect): M_sft from the fetched instruct and reasoning checkpoints, M_bai
from the fetched pretrained checkpoint and M_sft.

A merge's key hashes its inputs' fingerprints, its own parameters and the merge engine's version; its artifact is
published under merges/<stage>-<key>. `bai_core.artifact_stage.run_stage` decides whether to build it.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from pathlib import Path

from pydantic import BaseModel

from bai_core import layout, progress
from bai_core.artifact_stage import ArtifactStage
from bai_core.errors import BaiError
from bai_core.fingerprint import fingerprint_folder
from bai_core.merge.config import BaiMergeJob, MergeSettings, SftMergeJob, stage_groups, tokenizer_donors
from bai_core.merge.two_stage import ENGINE_VERSION, Progress, merge
from bai_core.sources import CheckpointRef, local_model
from bai_core.storage import StorageConfig, open_store


class ArtifactRef(BaseModel):
    """A published merge: its key, URI in the artifact store, content fingerprint and parameters."""

    stage: str  # "sft" or "bai"
    key: str
    uri: str
    fingerprint: str
    parameters: dict


class _MergeStage(ArtifactStage[ArtifactRef]):
    stage: str  # "sft" or "bai"
    doing = "merging"

    def __init__(self, inputs: dict[str, CheckpointRef | ArtifactRef], merge: MergeSettings, storage: StorageConfig,
                 progress: Progress | None = None):
        self.inputs, self.merge, self.storage, self.progress = inputs, merge, storage, progress
        self.store = open_store(storage)

    @abstractmethod
    def parameters(self) -> dict:
        """What the merge is made with besides its inputs: part of the key and of the marker."""

    def compute_key(self) -> str:
        payload = {"stage": self.stage, **{role: ref.fingerprint for role, ref in self.inputs.items()},
                   **self.parameters(), "engine": ENGINE_VERSION}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def folder(self) -> str:
        return layout.merge_folder(self.stage, self.key)

    def recorded(self, marker: dict) -> ArtifactRef:
        return ArtifactRef(stage=self.stage, key=self.key, uri=self.store.uri(self.folder()),
                           fingerprint=marker["fingerprint"], parameters=marker["parameters"])

    def build(self) -> ArtifactRef:
        output = self.store.local_path(self.folder())
        self.write(output)
        marker = {"cache_key": self.key, "stage": self.stage, "fingerprint": fingerprint_folder(output),
                  "parameters": self.parameters(),
                  "inputs": {role: {"source": ref.uri, "fingerprint": ref.fingerprint}
                             for role, ref in self.inputs.items()}}
        return self.recorded(self.store.publish(self.folder(), marker))

    @abstractmethod
    def write(self, output: Path) -> None:
        """Merge the inputs into `output`."""

    def local(self, role: str) -> Path:
        ref = self.inputs[role]
        return local_model(ref.source, ref.fingerprint, self.storage)

    def job_options(self) -> dict:
        """What the merge job needs besides its folders: the parameters, the tokenizer policy, the inputs' URIs."""
        return {**self.parameters(), "tokenizers": self.merge.tokenizers, "overwrite": True,
                "input_uris": {role: ref.uri for role, ref in self.inputs.items()}}


class SftMerge(_MergeStage):
    """Stage 1: M_sft = w * instruct + (1 - w) * reasoning."""

    stage = "sft"

    def __init__(self, instruct: CheckpointRef, reasoning: CheckpointRef, merge: MergeSettings,
                 storage: StorageConfig, progress: Progress | None = None):
        super().__init__({"instruct": instruct, "reasoning": reasoning}, merge, storage, progress)

    def formula(self) -> str:
        return self.merge.formula("sft")

    def parameters(self) -> dict:
        return {"instruct_weight": self.merge.instruct_weight, "dtype": self.merge.dtype,
                "tokenizer_from": tokenizer_donors(self.merge.tokenizer_from)["sft"],
                "max_shard_size": int(self.merge.max_shard_size), **_groups("sft", self.merge)}

    def write(self, output: Path) -> None:
        merge(SftMergeJob(instruct=self.local("instruct"), reasoning=self.local("reasoning"), output=output,
                          **self.job_options()), self.progress)


class BaiMerge(_MergeStage):
    """Stage 2: M_bai = alpha * pretrained + (1 - alpha) * M_sft."""

    stage = "bai"

    def __init__(self, pretrained: CheckpointRef, sft: ArtifactRef, merge: MergeSettings, storage: StorageConfig,
                 progress: Progress | None = None):
        super().__init__({"pretrained": pretrained, "sft": sft}, merge, storage, progress)

    def formula(self) -> str:
        return self.merge.formula("bai")

    def parameters(self) -> dict:
        return {"alpha": self.merge.alpha, "dtype": self.merge.dtype,
                "tokenizer_from": tokenizer_donors(self.merge.tokenizer_from)["bai"],
                "max_shard_size": int(self.merge.max_shard_size), **_groups("bai", self.merge)}

    def write(self, output: Path) -> None:
        sft: ArtifactRef = self.inputs["sft"]
        sft_marker = self.store.find(layout.merge_folder("sft", sft.key))
        if sft_marker is None:
            raise BaiError(f"{sft.uri}: the stage-1 artifact is missing or altered; run the pipeline again")
        merge(BaiMergeJob(pretrained=self.local("pretrained"),
                          sft=self.store.materialize(layout.merge_folder("sft", sft.key), sft_marker),
                          output=output, **self.job_options()), self.progress)


def _groups(stage: str, merge: MergeSettings) -> dict:
    """The tensor groups' own weights for this stage, in its parameters (and so its key) only when it has any: the
    keys of merges without them stay as they were."""
    own = stage_groups(stage, merge.groups, merge.instruct_weight if stage == "sft" else merge.alpha)
    return {"groups": own} if own else {}


def tell(stage: _MergeStage, ref: ArtifactRef, how: str) -> None:
    """The merge in one line of the run's story."""
    said = {"built": "merged", "rebuilt": "merged again", "cached": "found already published",
            "adopted": "published by a run beside this one"}
    progress.note(f"{stage.formula()}: {said[how]} ({ref.parameters['dtype']}, {ref.fingerprint[:19]}) -> {ref.uri}")
