"""The streaming linear-merge engine: chains of weighted sums, computed chunk by chunk, written in place.

A merge is a list of stages; each stage is a weighted sum of terms, and a term names an input checkpoint or an
earlier stage. BAI is two stages (sft = w*instruct + (1-w)*reasoning; bai = alpha*pretrained + (1-alpha)*sft),
but the engine does not know that.

Why it is fast and small:
- Every tensor is cut into flat chunks of at most `chunk_elements`; a chunk is read with `pread`, computed in
  float32, rounded to the output dtype and written with `pwrite` at its final offset. Peak memory is a few chunks
  per worker, whatever the model or tensor size.
- Chunks are independent, so a thread pool overlaps reading, arithmetic and writing on all cores (numpy and the
  file system calls release the GIL).
- No torch: importing it costs seconds, more than the merge of a 1 GB checkpoint. The arithmetic is numpy, with
  conversions that match torch's bit for bit (numerics.py).

Exactness: each term is multiplied, then added (no fused multiply-add), in float32 with float32 weights; a stage's
result is rounded to the output dtype before a later stage reads it. So running the stages fused in one pass, or
one at a time through files, gives the same bits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bai_core.errors import BaiError
from bai_core.io.checkpoint import Checkpoint
from bai_core.io.checkpoint_writer import CheckpointWriter
from bai_core.io.safetensors_file import CODES, STORAGE, TORCH_NAMES, TensorInfo, itemsize, pread_into
from bai_core.merge import numerics
from bai_core.merge.groups import group_of

DEFAULT_CHUNK_ELEMENTS = 512 * 1024  # 2 MB per float32 buffer: the arithmetic stays in cache


def float32_exact(weight: float) -> float:
    """The float32 value a weight will be used as (so the manifest and the arithmetic agree on it to the bit)."""
    return float(np.float32(weight))


@dataclass(frozen=True)
class Term:
    source: str  # an input's role, or an earlier stage's name
    weight: float


@dataclass(frozen=True)
class Stage:
    name: str
    terms: tuple[Term, ...]
    output: Path | None = None  # a folder to write this stage's weights into; None keeps it in memory only
    # Per tensor group (merge/groups.py), other weights for the same sources; a tensor of no group listed here
    # takes `terms`.
    group_terms: tuple[tuple[str, tuple[Term, ...]], ...] = ()


ProgressCallback = Callable[[int, int], None]  # (bytes of input processed, total bytes of input)


@dataclass
class _Chunk:
    name: str
    start: int  # element offsets into the flattened tensor
    stop: int


def merge_weights(
    inputs: dict[str, Checkpoint],
    stages: list[Stage],
    tensor_names: list[str],
    dtype: str | None = None,
    max_shard_bytes: int = 5 * 10**9,
    workers: int | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    on_progress: ProgressCallback | None = None,
) -> dict[str, list[Path]]:
    """Compute every stage for every tensor; write the weights of stages that have an `output` folder.

    `dtype` is a safetensors code ("BF16", ...) for floating-point outputs, or None to keep the inputs' dtype
    (which must then agree across inputs, tensor by tensor). Returns the weight files written, per stage.
    """
    _check_stages(inputs, stages)
    out_codes = {name: _output_dtype(inputs, name, dtype) for name in tensor_names}
    specs = [(name, out_codes[name], inputs[next(iter(inputs))].info(name).shape) for name in tensor_names]
    total = sum(inputs[role].info(name).nbytes for role in inputs for name in tensor_names)
    workers = workers or os.cpu_count() or 1

    with ExitStack() as stack:
        fds = {}
        for ckpt in inputs.values():
            for file in ckpt.weight_files:
                fds[file] = os.open(file, os.O_RDONLY)
                stack.callback(os.close, fds[file])
        writers: dict[str, CheckpointWriter] = {}
        for stage in stages:
            if stage.output is not None:
                writers[stage.name] = CheckpointWriter(stage.output, specs, max_shard_bytes)
                stack.callback(writers[stage.name].close)
        job = _ChunkJob(inputs, stages, out_codes, fds, writers, chunk_elements)
        progress = _Progress(total, on_progress)

        def done(chunk: _Chunk) -> None:
            progress.add(sum((chunk.stop - chunk.start) * itemsize(ckpt.info(chunk.name).dtype)
                             for ckpt in inputs.values()))

        _run_bounded(job, _chunks(inputs, tensor_names, chunk_elements), workers, on_done=done)
        return {name: writer.finish() for name, writer in writers.items()}


def _run_bounded(
    fn: Callable[[_Chunk], None], chunks: Iterator[_Chunk], workers: int, on_done: Callable[[_Chunk], None]
) -> None:
    """Run `fn` over the chunks on a thread pool, stopping at the first error.

    Only a few chunks are queued per worker (a 70B model has ~10^5 chunks: no need to hold a future for each), and
    `on_done` runs on the calling thread, so progress reporting never has to be thread-safe.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bai-merge")
    in_flight: dict = {}

    def settle(until) -> None:
        done, _ = wait(in_flight, return_when=until)
        for future in done:
            chunk = in_flight.pop(future)
            if future.exception() is not None:
                raise future.exception()
            on_done(chunk)

    try:
        for chunk in chunks:
            if len(in_flight) >= 4 * workers:
                settle(FIRST_COMPLETED)
            in_flight[pool.submit(fn, chunk)] = chunk
        while in_flight:
            settle(FIRST_EXCEPTION)
    finally:  # on an error or a signal, drop the queued chunks instead of computing them
        pool.shutdown(wait=True, cancel_futures=True)


class _Workspace:
    """One worker thread's buffers, reused for every chunk.

    Allocating fresh chunk-sized arrays costs page faults on every chunk (large allocations come from mmap and
    go back to the OS when freed); reusing a thread's buffers keeps the merge at memory speed and its RSS flat.
    """

    def __init__(self, chunk_elements: int, stage_names: list[str]):
        self.total = np.empty(chunk_elements, dtype=np.float32)
        self.term = np.empty(chunk_elements, dtype=np.float32)
        self.scratch = np.empty(chunk_elements, dtype=np.uint32)
        self.raw = np.empty(chunk_elements * 8, dtype=np.uint8)  # 8: the widest element type
        self.raw_other = np.empty(chunk_elements * 8, dtype=np.uint8)
        self.rounded = {name: np.empty(chunk_elements * 8, dtype=np.uint8) for name in stage_names}


class _ChunkJob:
    """Reads, combines and writes one chunk of one tensor for every stage."""

    def __init__(self, inputs, stages, out_codes, fds, writers, chunk_elements):
        self.inputs, self.stages, self.out_codes, self.fds, self.writers = inputs, stages, out_codes, fds, writers
        self.weights = {(s.name, None, t.source): np.float32(t.weight) for s in stages for t in s.terms}
        self.weights |= {(s.name, group, t.source): np.float32(t.weight) for s in stages
                         for group, terms in s.group_terms for t in terms}
        self.grouped = {s.name for s in stages if s.group_terms}
        self.chunk_elements = chunk_elements
        self._local = threading.local()

    def workspace(self) -> _Workspace:
        if not hasattr(self._local, "workspace"):
            self._local.workspace = _Workspace(self.chunk_elements, [s.name for s in self.stages])
        return self._local.workspace

    def read(self, info: TensorInfo, chunk: _Chunk, buffer: np.ndarray) -> np.ndarray:
        """Read the chunk's elements of `info` into `buffer` (bytes, or float32 when the input is float32)."""
        storage = STORAGE[info.dtype]
        n = chunk.stop - chunk.start
        target = buffer.view(np.uint8)[: n * storage.itemsize].view(storage)
        pread_into(self.fds[info.file], target, info.start + chunk.start * storage.itemsize, info.file)
        return target

    def __call__(self, chunk: _Chunk) -> None:
        infos = {role: ckpt.info(chunk.name) for role, ckpt in self.inputs.items()}
        ws = self.workspace()
        if not next(iter(infos.values())).is_float:
            return self._copy_identical(chunk, infos, ws)
        n = chunk.stop - chunk.start
        out_code = self.out_codes[chunk.name]
        total, term = ws.total[:n], ws.term[:n]
        rounded: dict[str, tuple[np.ndarray, str]] = {}  # each stage's result in the output dtype, for later stages
        group = group_of(chunk.name) if self.grouped else None
        for stage in self.stages:
            for k, t in enumerate(stage.terms):
                value = total if k == 0 else term
                if t.source in rounded:
                    numerics.widen(*rounded[t.source], out=value)  # widening to float32 is exact
                elif infos[t.source].dtype == "F32":
                    self.read(infos[t.source], chunk, value)
                else:
                    numerics.widen(self.read(infos[t.source], chunk, ws.raw), infos[t.source].dtype, out=value)
                weight = self.weights.get((stage.name, group, t.source), self.weights[(stage.name, None, t.source)])
                np.multiply(value, weight, out=value)
                if k > 0:
                    np.add(total, term, out=total)
            if not numerics.representable(total, out_code):
                raise self._non_finite(chunk, stage, out_code)
            result = numerics.narrow(total, out_code, ws.rounded[stage.name], ws.scratch)  # round to the output dtype
            rounded[stage.name] = (result, out_code)
            if stage.name in self.writers:
                self.writers[stage.name].write(chunk.name, chunk.start, result)

    @staticmethod
    def _non_finite(chunk: _Chunk, stage: Stage, code: str) -> BaiError:
        return BaiError(f"tensor {chunk.name!r}: the {stage.name} merge produced NaN or Inf values "
                        f"(non-finite inputs, or values out of range for {TORCH_NAMES[code]})")

    def _copy_identical(self, chunk: _Chunk, infos: dict[str, TensorInfo], ws: _Workspace) -> None:
        """Integer/bool buffers are not averaged: all inputs must hold the same values; they are copied."""
        (first_role, first), *others = infos.items()
        reference = self.read(first, chunk, ws.raw)
        for role, info in others:
            if not np.array_equal(reference, self.read(info, chunk, ws.raw_other)):
                raise BaiError(
                    f"tensor {chunk.name!r} ({info.dtype}) is not floating point and differs between {first.file} "
                    f"and {info.file}; non-float tensors can only be merged when identical"
                )
        for writer in self.writers.values():
            writer.write(chunk.name, chunk.start, reference)


def _check_stages(inputs: dict[str, Checkpoint], stages: list[Stage]) -> None:
    known = set(inputs)
    for stage in stages:
        for term in stage.terms:
            if term.source not in known:
                raise ValueError(f"stage {stage.name!r} reads {term.source!r}, which is not an input or earlier stage")
        known.add(stage.name)


def _output_dtype(inputs: dict[str, Checkpoint], name: str, dtype: str | None) -> str:
    codes = {role: ckpt.info(name).dtype for role, ckpt in inputs.items()}
    distinct = set(codes.values())
    is_float = {ckpt.info(name).is_float for ckpt in inputs.values()}
    if is_float == {False}:  # integer buffers are copied, so their dtype must already agree
        if len(distinct) > 1:
            raise BaiError(f"tensor {name!r} has different dtypes across inputs: {_describe(inputs, name, codes)}")
        return distinct.pop()
    if is_float != {True}:
        raise BaiError(f"tensor {name!r} is floating point in some inputs only: {_describe(inputs, name, codes)}")
    if dtype is not None:
        return dtype
    if len(distinct) > 1:
        raise BaiError(
            f"tensor {name!r} has mixed dtypes across inputs ({_describe(inputs, name, codes)}); "
            "pick the output dtype with --dtype float32|bfloat16|float16"
        )
    return distinct.pop()


def _describe(inputs: dict[str, Checkpoint], name: str, codes: dict[str, str]) -> str:
    return ", ".join(f"{codes[role]} in {ckpt.info(name).file}" for role, ckpt in inputs.items())


def _chunks(inputs: dict[str, Checkpoint], names: list[str], chunk_elements: int) -> Iterator[_Chunk]:
    reference = inputs[next(iter(inputs))]
    for name in names:
        numel = reference.info(name).numel
        for start in range(0, max(numel, 1), chunk_elements):
            yield _Chunk(name, start, min(start + chunk_elements, numel))


class _Progress:
    def __init__(self, total: int, callback: ProgressCallback | None):
        self.total, self.done, self.callback = total, 0, callback

    def add(self, nbytes: int) -> None:
        self.done += nbytes
        if self.callback is not None:
            self.callback(self.done, self.total)


def dtype_code(name: str) -> str:
    """'bfloat16' -> 'BF16' (the CLI speaks torch names, files speak safetensors codes)."""
    return CODES[name]
