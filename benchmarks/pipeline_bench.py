"""Benchmark: what caching buys in the Prefect pipeline, on synthetic bf16 checkpoint families.

Prints, from one run, in the Prefect mode this process finds (a temporary local API unless PREFECT_API_URL is set):
the time of an empty flow (Prefect's fixed cost per run) and of one no-op task; then, per checkpoint scale, the cold
pipeline run, the unchanged rerun, the bytes the rerun read, and the rerun's cost over the empty flow per cached task.
Target: the rerun reads no checkpoint bytes and costs <= empty flow + 0.5 s per cached task, at any scale.

    python benchmarks/pipeline_bench.py [--scales 0.1,1] [--repeats 3] [--workdir DIR]

Scale 1 is three ~1 GB checkpoints (benchmarks/merge_bench.py's family); scale 10 is ~10 GB each (90 layers).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from prefect import flow, task  # noqa: E402

from bai.flows.pipeline import bai_pipeline  # noqa: E402
from bai_core.config import PipelineConfig  # noqa: E402
from bai_core.fingerprint import cache_dir  # noqa: E402
from bai_core.demo.synthetic import BENCHMARK_SPEC, ROLES, write_synthetic_family  # noqa: E402

GB = 1e9
CACHED_TASKS = 2  # merge-stage1 and merge-stage2; the three fetches run every time (they are stat checks)


@task
def noop() -> int:
    return 1


@flow
def empty_flow() -> None:
    return None


@flow
def one_task_flow() -> None:
    noop()


def bytes_read() -> int:
    """Bytes this process has read through read-like system calls (page-cache hits included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def family_for(scale: float, workdir: Path) -> dict[str, Path]:
    layers = max(1, round(BENCHMARK_SPEC.num_layers * scale))
    spec = dataclasses.replace(BENCHMARK_SPEC, num_layers=layers)
    root = workdir / f"family-{layers}-layers"
    if not (root / "reasoning" / "config.json").is_file():
        shutil.rmtree(root, ignore_errors=True)
        print(f"building a {layers}-layer family in {root} ...", file=sys.stderr)
        write_synthetic_family(root, spec)
    return {role: root / role for role in ROLES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.1,1", help="checkpoint scales; 1 = three ~1 GB checkpoints")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=cache_dir() / "benchmarks" / "pipeline")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ["BAI_CACHE_DIR"] = str(args.workdir / "bai-cache")  # fingerprints start cold for the cold run

    started = time.perf_counter()
    empty_flow()  # starts the temporary API when there is no server: a one-off, reported apart
    print(f"Prefect start-up (first flow of the process): {time.perf_counter() - started:.2f} s")
    empty = statistics.median(timed(empty_flow) for _ in range(args.repeats))
    one_task = statistics.median(timed(one_task_flow) for _ in range(args.repeats))
    print(f"empty flow: {empty:.2f} s;  flow with one no-op task: {one_task:.2f} s "
          f"(task overhead {one_task - empty:.2f} s)")

    for scale in (float(s) for s in args.scales.split(",")):
        family = family_for(scale, args.workdir)
        size = sum(f.stat().st_size for path in family.values() for f in path.glob("*.safetensors"))
        store = args.workdir / f"store-{scale:g}"
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(args.workdir / "bai-cache", ignore_errors=True)
        config = PipelineConfig(name=f"bench-{scale:g}".replace(".", "_"), storage={"uri": str(store)},
                                models={role: str(path) for role, path in family.items()})
        cold = timed(bai_pipeline, config)
        reruns, read = [], []
        for _ in range(args.repeats):
            before = bytes_read()
            reruns.append(timed(bai_pipeline, config))
            read.append(bytes_read() - before)
            summary = bai_pipeline(config)
        states = {row["stage"]: row["state"] for row in summary["stages"]}
        rerun = statistics.median(reruns)
        per_task = (rerun - empty) / CACHED_TASKS
        print(f"scale {scale:g} (3 x {size / 3 / GB:.2f} GB): cold run {cold:.2f} s; unchanged rerun "
              f"{rerun:.2f} s (median of {args.repeats}; merges {states['merge-stage1']}/{states['merge-stage2']}); "
              f"read {max(read) / 1e6:.2f} MB of {size / 1e6:.0f} MB of checkpoints; "
              f"over the empty flow: {per_task:.2f} s per cached task (target <= 0.5)")


if __name__ == "__main__":
    main()
