"""Writes the weights of a Hugging Face checkpoint, laid out in advance and filled piece by piece.

Shards are planned from tensor sizes before any data exists (greedy, in tensor order, at most `max_shard_bytes`
each unless one tensor alone is larger), so every piece of every tensor can go straight to its final offset.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from bai_core.io.checkpoint import INDEX_FILE, SINGLE_WEIGHTS_FILE
from bai_core.io.safetensors_file import SafetensorsWriter, itemsize

TensorSpec = tuple[str, str, tuple[int, ...]]  # name, safetensors dtype code, shape


def plan_shards(tensors: list[TensorSpec], max_shard_bytes: int) -> list[list[TensorSpec]]:
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in tensors:
        nbytes = math.prod(spec[2]) * itemsize(spec[1])
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += nbytes
    return shards


def shard_names(count: int) -> list[str]:
    if count == 1:
        return [SINGLE_WEIGHTS_FILE]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


class CheckpointWriter:
    """The weight files of one output checkpoint folder. `write` is thread-safe (positioned writes)."""

    def __init__(self, folder: Path, tensors: list[TensorSpec], max_shard_bytes: int):
        self.folder = folder
        shards = plan_shards(tensors, max_shard_bytes)
        self._files: list[SafetensorsWriter] = []
        self._where: dict[str, SafetensorsWriter] = {}
        try:
            for name, specs in zip(shard_names(len(shards)), shards):
                writer = SafetensorsWriter(folder / name, specs, metadata={"format": "pt"})
                self._files.append(writer)
                self._where.update({spec[0]: writer for spec in specs})
        except BaseException:
            self.close()
            raise
        self.total_bytes = sum(math.prod(s[2]) * itemsize(s[1]) for s in tensors)

    def write(self, name: str, element_offset: int, piece: np.ndarray) -> None:
        self._where[name].write(name, element_offset, piece)

    def close(self) -> None:
        for writer in self._files:
            writer.close()

    def finish(self) -> list[Path]:
        """Close the files and, for several shards, write the index that maps tensors to shards."""
        self.close()
        if len(self._files) > 1:
            index = {
                "metadata": {"total_size": self.total_bytes},
                "weight_map": {name: writer.path.name for name, writer in self._where.items()},
            }
            (self.folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        return [writer.path for writer in self._files]
