"""What RL did to the demo actor: held-out accuracy and answer length before and after, with the run's verdicts.

Runs (or finds cached) the demo pipeline with its train stage, then scores the actor's starting point and the
trained actor with the demo family's evaluator (greedy, the family's eval split, chat format).

    python research/demo-rl/demo_rl.py [--config configs/demo.yaml] [--set train.steps=100 ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    command = [sys.executable, "-m", "bai.cli", "run", args.config, "--json"]
    for override in args.overrides:
        command += ["--set", override]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr.strip().splitlines()[-1])
    summary = json.loads(proc.stdout)
    train = {row["stage"]: row for row in summary["stages"]}["train"]
    print(f"bai run {args.config} {' '.join(args.overrides)}: train {train['state']} in {train['seconds']:.0f} s")

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from bai_core.demo.arithmetic import problems
    from bai_core.demo.evaluation import evaluate_lm
    from bai_core.demo.sizes import SIZES
    from bai_core.demo.training import fixed_threads
    from bai_core.demo.plugin import parse_demo
    from bai_core.sources import fetch

    transformers_logging.disable_progress_bar()
    actor = local(summary["outputs"]["actor"])
    manifest = json.loads((actor / "bai_train.json").read_text())
    init = manifest["init"]
    start = local(init["source"]) if init["merge_key"] else fetch(init["source"]).path
    size, _, seed = parse_demo(summary["inputs"]["reasoning"]["source"])
    spec = SIZES[size]
    held_out = problems("eval", seed, spec.a_range, spec.b_range, spec.eval_problems)
    tokenizer = AutoTokenizer.from_pretrained(actor)
    print(f"\nheld-out eval split ({len(held_out)} problems, greedy, chat format), size {size}, seed {seed}")
    print(f"{'model':<22}{'accuracy':>9}{'think':>7}{'answer tokens':>15}")
    with fixed_threads():
        for name, folder in ((f"init ({init['name']})", start), ("RL actor", actor)):
            scores = evaluate_lm(AutoModelForCausalLM.from_pretrained(folder), tokenizer, held_out,
                                 max_new_tokens=manifest["settings"]["max_completion_length"])
            print(f"{name:<22}{scores['accuracy']:>9.1%}{scores['think_rate']:>7.0%}"
                  f"{scores['mean_answer_tokens']:>15.1f}")
    records = [json.loads(line) for line in local(summary["outputs"]["metrics"]).read_text().splitlines()]
    first, last = records[0], records[-1]
    print(f"\ntraining: {len(records)} steps; mean length {first['length/mean']:.1f} -> {last['length/mean']:.1f} "
          f"tokens; reward {first['reward/mean']:+.3f} -> {last['reward/mean']:+.3f}; "
          f"{sum(r.get('seconds_per_step', 0) for r in records) / len(records):.2f} s/step")
    verdicts = json.loads(local(summary["outputs"]["verdicts"]).read_text())
    for key in ("sequence_length_collapse", "reward_hockey_stick"):
        print(f"{key}: {'DETECTED' if verdicts[key]['detected'] else 'not detected'} ({verdicts[key]['reason']})")


if __name__ == "__main__":
    main()
