"""What bai's wrapping costs a training run: the same tiny GRPO run through bai (monitor callback, reward wrapper,
metrics.jsonl after every step, detectors every `detect_every` steps) and as a plain TRL script (TRL scoring the
reward model itself, no callbacks), alternated, steps/s of each and the ratio. Target: wrapping costs <= 5%, at 1
process and at 2.

With `--processes 1,2` every run is started the way the train stage starts its ranks, `accelerate launch` with TRL's
DDP config (gloo on CPU), at the same global batch: bai's runs are what each of its ranks runs (rank 0 also writes
metrics.jsonl to the store as it goes), the plain ones the same TRL script under the same launcher. Not measured:
the stage's own process, which reads rank 0's metrics twice a second while the ranks train.

Also the GPU check: on a CUDA machine the same command reports steps/s there (bf16).

    python benchmarks/train_bench.py [--size demo] [--steps 20] [--repeats 3] [--processes 1,2] [--family DIR]

--family: a built demo family folder (bai demo build --output DIR); default: the one in bai's cache (built if needed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from bai_core.rl.config import TrainSettings
from bai_core.rl.metrics import MetricsLog
from bai_core.rl.prompts import load_prompts
from bai_core.rl.trainer import device, run_training, trl_config


def settings_for(args) -> TrainSettings:
    return TrainSettings(init="reasoning", reward=[{"model": f"demo://{args.size}/reward"}],
                         prompts=f"demo://{args.size}/rl", steps=args.steps, batch_size=args.batch_size,
                         generations=4, max_completion_length=args.max_completion_length, save_every=10**6,
                         length_bucket=16, detect_every=5)


def through_bai(family: Path, settings: TrainSettings, workdir: Path) -> float:
    """Seconds inside trainer.train() for the run through bai (model loading excluded, like the plain run)."""
    from bai_core.rl.metrics import MonitorHooks
    from bai_core.storage import ArtifactStore

    prompts = load_prompts(settings.prompts)
    clock = {}
    metrics = MetricsLog(workdir / "metrics.jsonl")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # as bai's worker: rank 0 copies metrics.jsonl to the store
        store = ArtifactStore(str(workdir / "store"))
        metrics = (MetricsLog.following(workdir / "metrics.jsonl", lambda data: store.put_bytes("metrics.jsonl", data))
                   if os.environ.get("RANK") == "0" else MetricsLog(workdir / f"metrics-{os.environ['RANK']}.jsonl"))

    def on_step(step: int, total: int, record: dict) -> None:  # train() spans step 1's start to the last step's end
        if step == 1:
            clock["start"] = time.perf_counter() - record.get("seconds_per_step", 0.0)
        clock["end"] = time.perf_counter()

    run_training(family / "reasoning", {"reward-model": family / "reward"}, prompts, settings, workdir / "trl",
                 workdir / "actor", metrics, MonitorHooks(on_step=on_step), lambda folder, step: None)
    return clock["end"] - clock["start"]


def plain_trl(family: Path, settings: TrainSettings, workdir: Path) -> float:
    """The same run as a user would write it with TRL alone."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import GRPOTrainer

    from bai_core.demo.training import fixed_threads

    on_gpu = device() == "cuda"
    tokenizer = AutoTokenizer.from_pretrained(family / "reasoning")
    model = AutoModelForCausalLM.from_pretrained(family / "reasoning",
                                                 dtype=torch.bfloat16 if on_gpu else torch.float32)
    reward = AutoModelForSequenceClassification.from_pretrained(family / "reward")
    reward_tokenizer = AutoTokenizer.from_pretrained(family / "reward")
    config = trl_config(settings, workdir / "plain", on_gpu)
    config.save_strategy = "no"
    with fixed_threads() if not on_gpu else nullcontext():
        trainer = GRPOTrainer(model=model, reward_funcs=[reward], reward_processing_classes=[reward_tokenizer],
                              args=config, train_dataset=Dataset.from_list(load_prompts(settings.prompts).rows),
                              processing_class=tokenizer)
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        trainer.train()
    return time.perf_counter() - started


RUNS = {"bai": through_bai, "plain TRL": plain_trl}


def launched(name: str, processes: int, args, workdir: Path) -> float:
    """One run under `accelerate launch` on `processes` ranks (the train stage's command); rank 0's seconds."""
    from bai_core.launcher import free_port
    from bai_core.rl.launch.config import accelerate_config

    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config("ddp")),
               "--num_processes", str(processes), "--num_machines", "1", "--machine_rank", "0",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()), "--mixed_precision",
               "bf16" if device() == "cuda" else "no", __file__, "--rank-run", name, "--workdir", str(workdir),
               *sys.argv[1:], "--family", str(args.family)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{name} on {processes} processes failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])["seconds"]


def rank_run(args) -> None:
    """Inside `accelerate launch`: this rank's run; rank 0 prints its seconds."""
    seconds = RUNS[args.rank_run](args.family, settings_for(args), Path(args.workdir))
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({"seconds": seconds}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="demo")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-completion-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--family", type=Path)
    parser.add_argument("--processes", help="e.g. 1,2: run every configuration under accelerate launch on that many "
                                            "ranks (default: in this process, one rank)")
    parser.add_argument("--rank-run", choices=list(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    if args.family is None:
        from bai_core.demo.publish import ensure_demo_family

        args.family = ensure_demo_family(args.size, 0).root
    if args.rank_run:
        return rank_run(args)
    settings = settings_for(args)
    if args.processes:
        return compare_processes(args, [int(n) for n in args.processes.split(",")])
    with tempfile.TemporaryDirectory() as workdir:  # warm-up, not timed: CUDA start-up, kernel selection, caches
        plain_trl(args.family, settings.model_copy(update={"steps": 2}), Path(workdir))
    times = {"bai": [], "plain TRL": []}
    for repeat in range(args.repeats):
        for name, run in (("bai", through_bai), ("plain TRL", plain_trl)):
            with tempfile.TemporaryDirectory() as workdir:
                seconds = run(args.family, settings, Path(workdir))
            times[name].append(seconds)
            print(f"repeat {repeat + 1}: {name:<9} {args.steps / seconds:6.2f} steps/s ({seconds:.2f} s)", flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\ndevice {device()}, size {args.size}, {args.steps} GRPO steps of {args.batch_size} completions "
          f"(<= {args.max_completion_length} tokens), median of {args.repeats}:")
    for name, seconds in median.items():
        print(f"  {name:<9} {args.steps / seconds:6.2f} steps/s")
    print(f"  bai / plain time ratio {median['bai'] / median['plain TRL']:.3f} (target <= 1.05)")



def compare_processes(args, counts: list[int]) -> None:
    times = {(name, n): [] for n in counts for name in RUNS}
    for repeat in range(args.repeats):
        for n in counts:
            for name in RUNS:
                with tempfile.TemporaryDirectory() as workdir:
                    seconds = launched(name, n, args, Path(workdir))
                times[name, n].append(seconds)
                print(f"repeat {repeat + 1}: {name:<9} x{n} {args.steps / seconds:6.2f} steps/s ({seconds:.2f} s)",
                      flush=True)
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"\ndevice {device()}, {os.cpu_count()} cores, size {args.size}, {args.steps} GRPO steps of "
          f"{args.batch_size} completions in all (<= {args.max_completion_length} tokens), under accelerate launch "
          f"(DDP), median of {args.repeats}:")
    for n in counts:
        bai, plain = median["bai", n], median["plain TRL", n]
        print(f"  {n} process(es): bai {args.steps / bai:6.2f} steps/s, plain TRL {args.steps / plain:6.2f} steps/s, "
              f"bai / plain time ratio {bai / plain:.3f} (target <= 1.05)")
    for n in counts[1:]:
        for name in RUNS:
            print(f"  {name}: {counts[0]} -> {n} processes, {median[name, counts[0]] / median[name, n]:.2f}x the "
                  "steps/s")


if __name__ == "__main__":
    main()
