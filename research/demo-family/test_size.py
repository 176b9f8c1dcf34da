"""How the `test` size's recipe was chosen: candidate recipes built as a build builds them (pinned kernels, one
thread), scored on the RL split against the test family's own targets, never on the eval split.

Asked when the test family became shipped (issue 29): could a test-size recipe do its members' jobs with a margin
(instruct well above chance, a reasoning model that thinks, merges that still finish, a judge better than chance)?
Each candidate changes the size's values only (sizes.py); the first candidate is the size as it stands. The search
stopped after the first two (`test_size.jsonl`): neither instruct reached 1%, and the claims about how well members
answer moved to the shipped demo-size family instead (research/demo-family/README.md, "The test size").

    .venv/bin/python research/demo-family/test_size.py [--only NAME,...] [--jobs 2] [--out test_size.jsonl]

The script restarts itself on the builds' kernels when it was not started on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bai_core.demo.recipe import Schedule  # noqa: E402

# name -> changes to SIZES["test"]
CANDIDATES = {
    "recipe": {},
    "base-wd": {"pretrain": Schedule(400, batch_size=16, weight_decay=0.1),
                "instruct": Schedule(300, batch_size=16, learning_rate=1e-3, replay=0.25),
                "reasoning": Schedule(300, batch_size=16, learning_rate=1e-3, replay=0.25),
                "reward": Schedule(100, batch_size=16)},
    "base-wd-long": {"pretrain": Schedule(800, batch_size=16, weight_decay=0.1),
                     "instruct": Schedule(300, batch_size=16, learning_rate=1e-3, replay=0.25),
                     "reasoning": Schedule(300, batch_size=16, learning_rate=1e-3, replay=0.25),
                     "reward": Schedule(100, batch_size=16)},
    "instruct-long": {"instruct": Schedule(1000, batch_size=16), "reward": Schedule(100, batch_size=16)},
}

# The test family's targets, on the RL split (written down before any candidate was scored).
TARGETS = {
    "instruct >= 10%, brief, never thinks": lambda r: (r["instruct"]["accuracy"] >= 0.10
                                                       and r["instruct"]["think_rate"] == 0
                                                       and r["instruct"]["mean_answer_tokens"] <= 8),
    "reasoning thinks in >= 95% and beats pretrained": lambda r: (r["reasoning"]["think_rate"] >= 0.95
                                                                  and r["reasoning"]["accuracy"]
                                                                  > r["pretrained"]["accuracy"]),
    "reasoning >= 30%": lambda r: r["reasoning"]["accuracy"] >= 0.30,
    "reasoning answers >= 3x instruct's tokens": lambda r: (r["reasoning"]["mean_answer_tokens"]
                                                            >= 3 * r["instruct"]["mean_answer_tokens"]),
    "M_bai alpha 0.5 finishes >= 60%": lambda r: r["M_bai@0.5"]["finished_rate"] >= 0.60,
    "reward model >= 60% pairwise": lambda r: r["reward"]["pairwise_accuracy"] >= 0.60,
}


def candidate(args: tuple) -> dict:
    name, seed, problems_n = args
    import torch
    from transformers import AutoModelForSequenceClassification, LlamaForCausalLM, PreTrainedTokenizerFast

    from bai_core.demo import members
    from bai_core.demo.arithmetic import problems
    from bai_core.demo.corpus import preference_pairs
    from bai_core.demo.evaluation import evaluate_lm, evaluate_reward
    from bai_core.demo.sizes import SIZES

    sys.path.insert(0, str(Path(__file__).parent))
    from family_sweep import merge_rows

    spec = dataclasses.replace(SIZES["test"], **CANDIDATES[name])
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bai-test-size-") as scratch:
        started = time.perf_counter()
        members.train_family(Path(scratch), spec, seed, lambda *_: None)
        seconds = round(time.perf_counter() - started, 1)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(Path(scratch) / "reasoning")
        items = problems("rl", seed, spec.a_range, spec.b_range, problems_n)
        row = {"candidate": name, "seed": seed, "build_seconds": seconds, "split": "rl", "problems": len(items),
               "spec": dataclasses.asdict(spec)}
        for member in members.LANGUAGE_MODELS:
            row[member] = evaluate_lm(LlamaForCausalLM.from_pretrained(Path(scratch) / member), tokenizer, items)
        row.update(merge_rows(Path(scratch), tokenizer, items))
        reward = AutoModelForSequenceClassification.from_pretrained(Path(scratch) / "reward")
        row["reward"] = evaluate_reward(reward, preference_pairs(tokenizer, items, seed + 1), tokenizer.pad_token_id,
                                        tokenizer.convert_tokens_to_ids("<think>"))
    row["targets"] = {target: bool(check(row)) for target, check in TARGETS.items()}
    row["targets_met"] = sum(row["targets"].values())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated candidate names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("test_size.jsonl"))
    args = parser.parse_args()
    from bai_core.demo.builder import kernels_pinned, pinned_environment

    if not kernels_pinned():  # the switches are read when torch loads: start again with them set
        os.execve(sys.executable, [sys.executable, *sys.argv], pinned_environment())
    names = args.only.split(",") if args.only else list(CANDIDATES)
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(candidate, [(name, args.seed, args.problems) for name in names]):
            with args.out.open("a") as out:
                out.write(json.dumps(row) + "\n")
            summary = {m: row[m].get("accuracy", row[m].get("pairwise_accuracy"))
                       for m in ("pretrained", "instruct", "reasoning", "M_sft", "M_bai@0.5", "reward")}
            print(row["candidate"], row["build_seconds"], summary, row["targets_met"], "of", len(TARGETS),
                  flush=True)


if __name__ == "__main__":
    main()
