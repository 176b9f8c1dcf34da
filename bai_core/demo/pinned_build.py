"""The child process of a pinned demo family build (builder.py starts it): one build, on the kernels the parent set,
its progress as marked lines on stdout, a failure as its last line. Apart from builder.py, so that the build
(family.py) and the process that starts it (builder.py) do not import each other.

    python -m bai_core.demo.pinned_build --size SIZE --seed N --output DIR [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from bai_core.demo.builder import PROGRESS_MARK, kernels_pinned
from bai_core.demo.family import build_family
from bai_core.demo.training import TRAINING_KERNELS
from bai_core.errors import BaiError


def _print_progress(phase: str, step: int, total: int) -> None:
    print(PROGRESS_MARK + json.dumps([phase, step, total]), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One demo family build, on the pinned kernels (bai's own use).")
    parser.add_argument("--size", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    # SIGTERM (the parent stopping) as an exception, so the build's temporary folder is removed on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not kernels_pinned():
        print(f"bai: error: started without the builds' kernels ({TRAINING_KERNELS})", file=sys.stderr)
        return 1
    try:
        build_family(args.output, args.size, args.seed, overwrite=args.overwrite, progress=_print_progress)
    except BaiError as error:
        print(f"bai: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
