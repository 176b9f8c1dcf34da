"""Builds the demo family under CPU-kernel settings and compares the fingerprints: which switches change the bits.

Each setting is a set of environment variables that make torch (ATen's vectorized kernels), oneDNN or MKL take the
code path another processor would take, or pin one. Every build runs in a process of its own (the switches are read
when the libraries load), on one torch thread as every build does, from a fresh output folder.

    .venv/bin/python research/cpu-portability/family_builds.py --size test [--settings NAME,...] [--out rows.jsonl]

Each row: the setting, its environment, each member's fingerprint, the report's figures and the build's seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The switches (see research/cpu-portability/README.md for what each one does).
SETTINGS = {
    "default": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "mkl-sse42": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "mkl-avx": {"MKL_ENABLE_INSTRUCTIONS": "AVX"},
    "mkl-cbwr-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "mkl-cbwr-avx2": {"MKL_CBWR": "AVX2"},
    "omp-3-threads": {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"},
    "portable": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
    "portable+mkl-sse42": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE",
                           "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "portable+onednn-sse41": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE",
                              "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def build(size: str, seed: int, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bai-portability-") as work:
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "BAI_CACHE_DIR": f"{work}/cache", **env}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bai.cli", "demo", "build", "--size", size, "--seed", str(seed),
                               "--output", f"{work}/family", "--json"], capture_output=True, text=True,
                              env=environment, timeout=7200)
        if proc.returncode != 0:
            raise SystemExit(f"build failed under {env}: {proc.stderr[-2000:]}")
        return {"seconds": round(time.perf_counter() - started, 1), "report": json.loads(proc.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("family_builds.jsonl"))
    args = parser.parse_args()
    for name in args.settings.split(","):
        built = build(args.size, args.seed, SETTINGS[name])
        report = built["report"]
        row = {"setting": name, "env": SETTINGS[name], "size": args.size, "seed": args.seed,
               "recipe": report["recipe"], "cpu": report["built_on"]["cpu"], "seconds": built["seconds"],
               "fingerprints": {m: r["fingerprint"] for m, r in report["models"].items()},
               "accuracy": {m: r.get("accuracy", r.get("pairwise_accuracy")) for m, r in report["models"].items()},
               "merges": [row["accuracy"] for row in report["merges"]]}
        with args.out.open("a") as out:
            out.write(json.dumps(row) + "\n")
        print(name, built["seconds"], {m: f[7:19] for m, f in row["fingerprints"].items()}, row["accuracy"],
              flush=True)


if __name__ == "__main__":
    main()
