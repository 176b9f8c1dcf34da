"""Benchmark: the demo family build and a merge, quiet and beside a CPU hog, and what torch threads do to training.

Prints, from one run on this machine:
- training steps (demo-size model, 40 steps) with 1 and 2 torch threads, quiet and under the hog: seconds, the ratio
  hog / quiet, and whether the weights are bit-identical across thread counts;
- `bai demo build --size SIZE` as a whole process (its pinned thread setting), quiet and under the hog;
- `bai merge` as a whole process on three synthetic ~1 GB checkpoints, quiet and under the hog.
The hog is N processes spinning on the CPU (default 2, on a 2-core machine: the cores are fully shared).
Target: under a 2-process hog, the build (most of `make demo`) takes at most 3x its quiet time.

    python research/demo-family/contention_bench.py [--size test|demo] [--hog 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

TRAINING_PROBE = r"""
import hashlib, json, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from dataclasses import replace
from pathlib import Path
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast
from bai_core.demo import members as F
from bai_core.demo.sizes import SIZES
from bai_core.demo.arithmetic import problems
from bai_core.demo.tokenizer import CHAT_TEMPLATE, write_char_tokenizer
from bai_core.demo.training import encode_chats, train_causal_lm
spec = SIZES["demo"]
write_char_tokenizer(Path(sys.argv[2]), CHAT_TEMPLATE, vocab_size=F.VOCAB_SIZE)
tokenizer = PreTrainedTokenizerFast.from_pretrained(sys.argv[2])
data = encode_chats(tokenizer, [(p.question, p.reasoning_answer())
                               for p in problems("train", 0, spec.a_range, spec.b_range, 2000)])
torch.manual_seed(0)
model = LlamaForCausalLM(F.model_config(spec, F.VOCAB_SIZE))
started = time.perf_counter()
train_causal_lm(model, data, replace(spec.reasoning, steps=40), 0, tokenizer.pad_token_id)
seconds = time.perf_counter() - started
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:16]
print(json.dumps({"seconds": seconds, "weights": digest}))
"""


def _spin() -> None:
    while True:
        pass


@contextmanager
def hog(processes: int):
    workers = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(processes)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()


def timed(command: list[str], env: dict | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout


def training_probe(threads: int, workdir: Path) -> dict:
    _, out = timed([sys.executable, "-c", TRAINING_PROBE, str(threads), str(workdir / f"tokenizer-{threads}")])
    return json.loads(out)


def demo_build(size: str, workdir: Path) -> tuple[float, dict]:
    output = workdir / f"family-{size}"
    shutil.rmtree(output, ignore_errors=True)
    seconds, out = timed([sys.executable, "-m", "bai.cli", "demo", "build", "--size", size,
                          "--output", str(output), "--json"])
    report = json.loads(out)
    return seconds, {m: report["models"][m]["fingerprint"] for m in report["models"]}


def merge(family: dict[str, Path], workdir: Path) -> float:
    out = workdir / "merge-out"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "bai.cli", "merge", "--json", "--output", str(out / "bai"),
               "--stage1-output", str(out / "sft")] + [a for role, path in family.items()
                                                       for a in (f"--{role}", str(path))]
    seconds, _ = timed(command)
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="test", help="demo family size to build (test: ~1 min, demo: ~10 min)")
    parser.add_argument("--hog", type=int, default=2, help="busy processes beside the measured work")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bai-contention-bench")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: training,build,merge")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BAI_CACHE_DIR", str(args.workdir / "bai-cache"))
    skip = set(filter(None, args.skip.split(",")))
    print(f"machine: {os.cpu_count()} cores; hog: {args.hog} spinning processes")

    if "training" not in skip:
        rows = {}
        for threads in (1, 2):
            quiet = training_probe(threads, args.workdir)
            with hog(args.hog):
                busy = training_probe(threads, args.workdir)
            rows[threads] = (quiet, busy)
            print(f"training, 40 demo-size steps, {threads} torch thread(s): quiet {quiet['seconds']:.1f} s, "
                  f"under the hog {busy['seconds']:.1f} s  -> {busy['seconds'] / quiet['seconds']:.2f}x")
        same = len({r['weights'] for pair in rows.values() for r in pair}) == 1
        print(f"  weights identical across thread counts and load: {same}")

    if "build" not in skip:
        quiet, prints = demo_build(args.size, args.workdir)
        with hog(args.hog):
            busy, prints_busy = demo_build(args.size, args.workdir)
        print(f"bai demo build --size {args.size} (whole process): quiet {quiet:.1f} s, under the hog {busy:.1f} s "
              f"-> {busy / quiet:.2f}x (target <= 3); same fingerprints: {prints == prints_busy}")

    if "merge" not in skip:
        sys.path.insert(0, str(Path(__file__).parent))
        from merge_bench import build_family

        family = build_family(args.workdir / "merge-family")
        merge(family, args.workdir)  # warm the page cache and the fingerprint memo
        quiet = min(merge(family, args.workdir) for _ in range(3))
        with hog(args.hog):
            busy = min(merge(family, args.workdir) for _ in range(3))
        print(f"bai merge, 3 x 1 GB bf16 (whole process, best of 3): quiet {quiet:.2f} s, under the hog {busy:.2f} s "
              f"-> {busy / quiet:.2f}x")


if __name__ == "__main__":
    main()
