"""What bai's wrapping costs a scoring run: `bai eval` (uncached: a fresh store each time) against the
`lm-eval run` command line it prints (with --log_samples: bai keeps the samples too), on the same checkpoint,
alternated; wall time of each whole process and the ratio of the medians. Target: bai eval <= 1.05x lm-eval's own
CLI. Also checks that both give the same score.

    python benchmarks/eval_bench.py MEMBER_FOLDER [--repeats 3] [--suite demo]

MEMBER_FOLDER: a demo family member, e.g. bai-artifacts/families/demo-seed1-<recipe>/reasoning after `make demo`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(command[:4])} ... failed:\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("member", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--suite", default="demo")
    args = parser.parse_args()

    bai_times, cli_times, scores = [], [], set()
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bai-eval-bench-") as scratch:
            seconds, out = timed([str(BIN / "bai"), "eval", str(args.member), "--suite", args.suite,
                                  "--store", f"{scratch}/store", "--json"])
            ref = json.loads(out)
            bai_times.append(seconds)
            command = shlex.split(ref["lm_eval_command"])
            # --log_samples: bai keeps every sample too, so both write the same outputs
            seconds, _ = timed([str(BIN / "lm-eval"), *command[1:], "--output_path", f"{scratch}/lm-eval",
                                "--log_samples"])
            cli_times.append(seconds)
            [results] = Path(scratch, "lm-eval").rglob("results_*.json")
            cli = json.loads(results.read_text())["results"]
            scores.add(tuple(row["score"] for row in ref["rows"]))
            scores.add(tuple(cli[row["task"]][row["metric"]] for row in ref["rows"]))
        print(f"repeat {repeat + 1}: bai eval {bai_times[-1]:.1f} s, lm-eval CLI {cli_times[-1]:.1f} s", flush=True)
    bai, cli = statistics.median(bai_times), statistics.median(cli_times)
    print(f"median wall time: bai eval {bai:.1f} s, lm-eval CLI {cli:.1f} s, ratio {bai / cli:.3f} (target <= 1.05)")
    print(f"same scores: {len(scores) == 1} {sorted(scores)}")


if __name__ == "__main__":
    main()
