"""Torch's CPU threads, fixed for a block of work: the same bits on every machine, whatever its core count, and
graceful on a busy one (bai's CPU RL runs). The demo family's recipe keeps its own copy (demo/training.py): its code
is hashed into the shipped family's id, so moving it would make the shipped family stale."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fixed_threads(n: int = 1) -> Iterator[None]:
    """Run torch on exactly `n` intra-op threads inside the block (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
