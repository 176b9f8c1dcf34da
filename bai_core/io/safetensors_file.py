"""The safetensors file format, read and written without holding a tensor in memory.

A safetensors file is: 8 bytes (little-endian u64) giving the header length N, N bytes of JSON mapping each tensor
name to {dtype, shape, data_offsets}, then the raw tensor bytes. Knowing every tensor's name, dtype and shape up
front, we can lay out the whole output file before computing anything, and then write each piece of each tensor
straight to its final offset with `pwrite` -- from several threads, in any order, with no shard-sized buffer.

Reading goes through `pread` into small buffers rather than `mmap`, so the process's resident memory stays the size
of the chunks in flight (mapped file pages would count against RSS and make memory use look like the model's size).
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bai_core.errors import BaiError

# safetensors dtype code -> how its elements are held in numpy. bfloat16 and float8 have no numpy type: their raw
# bits are held as unsigned integers of the same width and converted by bai_core.merge.numerics.
STORAGE: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(np.uint16),
    "F8_E4M3": np.dtype(np.uint8),
    "F8_E5M2": np.dtype(np.uint8),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
# The names torch and config.json use for them.
TORCH_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
               "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
               "BOOL": "bool"}
CODES: dict[str, str] = {name: code for code, name in TORCH_NAMES.items()}  # "bfloat16" -> "BF16"
FLOAT_CODES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the reference implementation's limit too


def itemsize(code: str) -> int:
    return STORAGE[code].itemsize


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor's bytes live: a file and an absolute byte range in it."""

    name: str
    dtype: str  # safetensors code, e.g. "BF16"
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute offset of the first byte in `file`
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_CODES


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parse and fully validate a safetensors header: returns its tensors and its `__metadata__`.

    Checks everything the reference loader checks (header bounds, dtypes, byte sizes, contiguous data that ends
    exactly at the end of the file), so a truncated or corrupt file fails here with its name, before any merge work.
    """

    def corrupt(why: str) -> BaiError:
        return BaiError(f"{path}: not a valid safetensors file ({why})")

    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise corrupt(f"only {size} bytes long")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(size - 8, _MAX_HEADER_BYTES):
            raise corrupt(f"header length {header_len} exceeds the file size {size}")
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise corrupt(f"header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise corrupt("header is not a JSON object")

    metadata = header.pop("__metadata__", None) or {}
    data_start = 8 + header_len
    data_len = size - data_start
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        try:
            code, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise corrupt(f"tensor {name!r} has a malformed entry") from None
        if code not in STORAGE:
            raise corrupt(f"tensor {name!r} has unsupported dtype {code!r}")
        if not all(isinstance(d, int) and d >= 0 for d in shape) or not (0 <= begin <= end):
            raise corrupt(f"tensor {name!r} has a malformed shape or offsets")
        if (end - begin) != math.prod(shape) * itemsize(code):
            raise corrupt(f"tensor {name!r}: {end - begin} bytes do not match {code}{list(shape)}")
        tensors[name] = TensorInfo(name, code, shape, path, data_start + begin, data_start + end)

    expected = 0  # tensors must tile the data section with no gap or overlap
    for info in sorted(tensors.values(), key=lambda t: t.start):
        if info.start - data_start != expected:
            raise corrupt(f"tensor {info.name!r} does not start where the previous one ends")
        expected = info.end - data_start
    if expected > data_len:
        raise corrupt(f"truncated: header describes {expected} bytes of tensor data, the file holds {data_len}")
    if expected < data_len:
        raise corrupt(f"{data_len - expected} unexpected bytes after the tensor data")
    return tensors, metadata


def pread_into(fd: int, buffer: np.ndarray, offset: int, path: Path) -> None:
    """Fill a contiguous array with the file's bytes at `offset` (loops over short reads)."""
    view = memoryview(buffer.view(np.uint8))
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise BaiError(f"{path}: file ended early at byte {offset + done} (was it modified during the merge?)")
        done += n


@dataclass(frozen=True)
class TensorSlot:
    """Where the writer will put one output tensor."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute offset in the output file

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * itemsize(self.dtype)


class SafetensorsWriter:
    """An output file laid out in advance; pieces of tensors are written to their offsets in any order.

    The header goes first, the file is sized to its final length, and `write` is a positioned write, so it is safe
    to call from several threads at once.
    """

    def __init__(self, path: Path, tensors: list[tuple[str, str, tuple[int, ...]]], metadata: dict[str, str]):
        header: dict[str, object] = {"__metadata__": metadata}
        offset = 0
        for name, code, shape in tensors:
            nbytes = math.prod(shape) * itemsize(code)
            header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # pad so tensor data starts 8-byte aligned, as the reference writer does
        data_start = 8 + len(blob)
        self.path = path
        self.size = data_start + offset
        self.slots = {
            name: TensorSlot(name, entry["dtype"], tuple(entry["shape"]), data_start + entry["data_offsets"][0])
            for name, entry in header.items()
            if name != "__metadata__"
        }
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(self._fd, struct.pack("<Q", len(blob)) + blob, 0)
        os.ftruncate(self._fd, self.size)

    def write(self, name: str, element_offset: int, piece: np.ndarray) -> None:
        """Write a contiguous run of elements of tensor `name`, starting at its element `element_offset`."""
        slot = self.slots[name]
        data = memoryview(piece.reshape(-1).view(np.uint8))
        offset = slot.start + element_offset * piece.itemsize
        done = 0
        while done < len(data):
            done += os.pwrite(self._fd, data[done:], offset + done)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def dominant_float_dtype(files: list[Path]) -> str:
    """The float dtype holding most bytes in these weight files, as torch names it (what config.json announces)."""
    from collections import Counter

    weight = Counter()
    for file in files:
        for info in read_header(file)[0].values():
            if info.is_float:
                weight[info.dtype] += info.nbytes
    code = weight.most_common(1)[0][0] if weight else "F32"
    return TORCH_NAMES[code]
