"""Element conversions between the stored dtypes and float32, in numpy, bit-identical to torch's.

Why not torch: importing it takes seconds, longer than merging a 1 GB checkpoint, and a merge needs only these
conversions and float32 multiply/add. Every rounding is round-to-nearest-even, as torch's CPU kernels do:
- float16, float64: numpy's own casts (IEEE, round to nearest even).
- bfloat16: the upper 16 bits of a float32. Widening shifts them back; narrowing adds 0x7FFF plus the lowest kept bit,
  then shifts (c10::BFloat16's round_to_nearest_even). Values that would round to inf are refused before rounding.
- float8 (rare in checkpoints): converted through torch, imported only when a float8 tensor is met.
"""

from __future__ import annotations

import numpy as np


def widen(raw: np.ndarray, code: str, out: np.ndarray) -> None:
    """out (float32) = the values of `raw`, a buffer holding `code` elements (raw bits for bfloat16 and float8)."""
    if code == "BF16":
        bits = out.view(np.uint32)
        np.copyto(bits, raw, casting="unsafe")  # zero-extend the 16 bits...
        np.left_shift(bits, 16, out=bits)  # ...into the upper half: exact
    elif code in ("F16", "F64", "F32"):
        np.copyto(out, raw, casting="unsafe")
    else:
        _torch_widen(raw, code, out)


def narrow(values: np.ndarray, code: str, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Round float32 `values` to `code` into the byte buffer `out`; returns the typed view of the result.
    `scratch` is a uint32 buffer at least as long as `values`."""
    n = values.shape[0]
    if code == "F32":
        result = out[: 4 * n].view(np.float32)
        np.copyto(result, values)
    elif code in ("F16", "F64"):
        result = out[: n * np.dtype(_NUMPY[code]).itemsize].view(_NUMPY[code])
        np.copyto(result, values, casting="unsafe")
    elif code == "BF16":
        bits, rounded = values.view(np.uint32), scratch[:n]
        np.right_shift(bits, 16, out=rounded)
        np.bitwise_and(rounded, 1, out=rounded)
        np.add(rounded, 0x7FFF, out=rounded)
        np.add(rounded, bits, out=rounded)  # representable inputs only (checked before): no wrap-around
        np.right_shift(rounded, 16, out=rounded)
        result = out[: 2 * n].view(np.uint16)
        np.copyto(result, rounded, casting="unsafe")
    else:
        result = out[:n].view(np.uint8)
        _torch_narrow(values, code, result)
    return result


# The smallest magnitude that rounds to inf in each narrower type: bfloat16 bits 0x7F7F8000 (half-way above its
# largest finite value, rounded up to even), float16 65520 (half-way between 65504 and 65536).
_OVERFLOW_AT = {"BF16": float(np.uint32(0x7F7F8000).view(np.float32)), "F16": 65520.0, "F32": float("inf"),
                "F64": float("inf")}


def representable(values: np.ndarray, code: str) -> bool:
    """Are all float32 `values` finite, and finite once rounded to `code`? From their extremes alone: two reductions,
    no temporary arrays (NaN propagates through min and max)."""
    if values.size == 0:
        return True
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        return False
    if code in _OVERFLOW_AT:
        return -_OVERFLOW_AT[code] < low and high < _OVERFLOW_AT[code]
    return bool(np.isfinite(_torch_widened(_torch_narrowed(values, code), code)).all())


_NUMPY = {"F16": np.float16, "F64": np.float64}
_TORCH_FLOAT8 = {"F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def _torch_widened(raw: np.ndarray, code: str) -> np.ndarray:
    import torch

    return torch.from_numpy(np.ascontiguousarray(raw)).view(getattr(torch, _TORCH_FLOAT8[code])).float().numpy()


def _torch_widen(raw: np.ndarray, code: str, out: np.ndarray) -> None:
    np.copyto(out, _torch_widened(raw, code))


def _torch_narrowed(values: np.ndarray, code: str) -> np.ndarray:
    import torch

    return torch.from_numpy(np.ascontiguousarray(values)).to(getattr(torch, _TORCH_FLOAT8[code])).view(
        torch.uint8).numpy()


def _torch_narrow(values: np.ndarray, code: str, out: np.ndarray) -> None:
    np.copyto(out, _torch_narrowed(values, code))
