"""How the demo family's recipe was chosen: train variants on the train split minus a dev split, score them on dev.

The held-out eval split is never looked at here. The train problems are split once more by a hash of their
arithmetic: ~15% become `dev` problems (never trained on, by any member), the rest are trained on. Each variant
changes the size's recipe (pretraining length and corpus, fine-tune learning rate, length, replay and anchor, reward
model start and length), trains the four members in memory, and prints one JSON line with dev-split figures for the
members and for the merges over the paper's grid (w = 0.5; alpha 0.1 ... 0.9), plus seconds per phase.

Each fine-tune variant, and the reward variants together, are one job that pretrains its base itself. Jobs run in
parallel, one torch
thread each (`--jobs`); `--device cuda` trains on a GPU instead (the figures differ from CPU bits, not in kind).

    python research/demo-family/family_sweep.py [--size demo] [--device cpu|cuda] [--jobs N] [--out results.jsonl]
        [--only BASE[,BASE...]]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

DEV_SHARE = 0.15

# Bases: how the pretrained model is made. Fine-tunes and reward models: what is trained from each base.
BASES = {
    # round 1 (research/demo-family/round1-h200.jsonl): no merge kept the skill from any of these
    # "p1200": {"pretrain": {"steps": 1200}},
    # "p2000": {"pretrain": {"steps": 2000}},
    # "p1200-q": {"pretrain": {"steps": 1200}, "corpus": ("stories", "worked", "facts", "questions")},
    # "p2000-q": {"pretrain": {"steps": 2000}, "corpus": ("stories", "worked", "facts", "questions")},
    # round 2 (research/demo-family/round2-h200.jsonl), dialogues answered "Ann has 42 marbles.": merges kept the skill
    # but never ended in a number
    # "p2000-d": {"pretrain": {"steps": 2000}, "corpus": ("stories", "worked", "facts", "dialogues")},
    # "p2000-qd": {"pretrain": {"steps": 2000}, "corpus": ("stories", "worked", "facts", "questions", "dialogues")},
    # round 4 (research/demo-family/round4-cpu*.jsonl, CPU): the pretraining weight decay, by learning curve
    # (research/demo-family/pretraining_curve.py); 0.1 and 2000 steps became the recipe. Its fine-tunes: the rows below.
    "recipe": {},  # the size's recipe as it stands in bai_core/demo/sizes.py
}
FINETUNES = {
    "recipe": {},
    "lr1e-4-replay": {"learning_rate": 1e-4, "steps": 300, "replay": 0.25},
    "lr3e-4-short-replay": {"learning_rate": 3e-4, "steps": 150, "replay": 0.25},
    "lr3e-4": {"learning_rate": 3e-4, "steps": 300},
    "lr3e-4-replay": {"learning_rate": 3e-4, "steps": 300, "replay": 0.25},
    "lr1e-3-short-replay": {"learning_rate": 1e-3, "steps": 150, "replay": 0.25},
    "lr3e-4-replay-long": {"learning_rate": 3e-4, "steps": 500, "replay": 0.25},
    "lr1e-4-replay-long": {"learning_rate": 1e-4, "steps": 600, "replay": 0.25},
}
REWARDS = {  # each trained from the members of the reference fine-tune
    "recipe": {"init": "instruct"},  # the size's reward schedule
    "from-instruct-b16": {"init": "instruct", "steps": 1000, "batch_size": 16, "learning_rate": 1e-3},  # round 4
    "from-instruct": {"init": "instruct", "steps": 400, "learning_rate": 1e-3},
    "from-pretrained": {"init": "pretrained", "steps": 400, "learning_rate": 1e-3},
    "from-reasoning": {"init": "reasoning", "steps": 400, "learning_rate": 1e-3},
}
REFERENCE_FINETUNE = "recipe"


def is_dev(problem, seed: int) -> bool:
    digest = hashlib.sha256(f"dev:{seed}:{problem.op}:{problem.a}:{problem.b}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < DEV_SHARE


def train_dev_split(spec, seed: int) -> tuple[list, list]:
    """The size's train problems without the dev ones (what the members train on), and the distinct dev problems."""
    from bai_core.demo.arithmetic import problems

    everything = problems("train", seed, spec.a_range, spec.b_range, spec.train_problems)
    train = [p for p in everything if not is_dev(p, seed)]
    dev = list({(p.op, p.a, p.b): p for p in everything if is_dev(p, seed)}.values())
    return train, dev


def char_tokenizer():
    """The family's tokenizer, built in a scratch folder and loaded (as the family build does)."""
    import tempfile

    from transformers import PreTrainedTokenizerFast

    from bai_core.demo.members import VOCAB_SIZE
    from bai_core.demo.tokenizer import CHAT_TEMPLATE, write_char_tokenizer

    with tempfile.TemporaryDirectory() as scratch:
        write_char_tokenizer(Path(scratch), CHAT_TEMPLATE, vocab_size=VOCAB_SIZE)
        return PreTrainedTokenizerFast.from_pretrained(scratch, local_files_only=True)


def merge_rows(family: Path, tokenizer, items) -> dict:
    """The grid's merges of a family folder, scored on `items`: "M_sft" / "M_bai@<alpha>" -> metrics."""
    from bai_core.demo.evaluation import evaluate_merges

    return {"M_sft" if merge["alpha"] is None else f"M_bai@{merge['alpha']:g}":
            {k: v for k, v in merge.items() if k not in ("model", "instruct_weight", "alpha")}
            for merge in evaluate_merges(family, tokenizer, items)}


def variant_spec(spec, base: dict, finetune: dict | None = None, reward: dict | None = None, scale: float = 1.0):
    """The size's recipe with a variant's changes; `scale` multiplies every run's steps (--smoke)."""

    def schedule(original, changes: dict):
        changes = {k: v for k, v in changes.items() if k != "init"}
        steps = changes.get("steps", original.steps)
        return dataclasses.replace(original, **{**changes, "steps": max(2, int(steps * scale))})

    changes = {k: v for k, v in base.items() if k != "pretrain"}
    changes["pretrain"] = schedule(spec.pretrain, base.get("pretrain", {}))
    for member in ("instruct", "reasoning"):
        changes[member] = schedule(getattr(spec, member), finetune or {})
    changes["reward"] = schedule(spec.reward, reward or {})
    if reward:
        changes["reward_init"] = reward["init"]
    return dataclasses.replace(spec, **changes)


def run_base(args: tuple) -> list[dict]:
    """One job: pretrain a base, then its fine-tune variant (or the reward variants); one JSON row per result."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bai-sweep-") as scratch:
        return _run_base(Path(scratch), *args)


def _run_base(scratch: Path, size, base_name, group, seed, device, out, scale) -> list[dict]:
    import torch

    from bai_core.demo import members as F
    from bai_core.demo.corpus import preference_pairs
    from bai_core.demo.evaluation import evaluate_lm, evaluate_reward
    from bai_core.demo.sizes import SIZES

    torch.set_num_threads(1)
    spec = SIZES[size]
    tokenizer = char_tokenizer()
    train, dev = train_dev_split(spec, seed)
    results = []
    quiet = lambda *_: None  # noqa: E731

    def emit(row: dict) -> None:
        row = {"base": base_name, "device": device, **row}
        results.append(row)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    def timed(spec_, members, trained):
        started = time.perf_counter()
        models = F.train_members(spec_, tokenizer, train, seed, quiet, device, members, trained)
        return models, round(time.perf_counter() - started, 1)

    base_spec = variant_spec(spec, BASES[base_name], scale=scale)
    base, seconds = timed(base_spec, ("pretrained",), None)
    if group != "rewards":
        emit({"variant": "pretrained", "group": group, "seconds": seconds, "dev_problems": len(dev),
              "train_problems": len(train), **evaluate_lm(base["pretrained"], tokenizer, dev)})
    ft_name = REFERENCE_FINETUNE if group == "rewards" else group
    ft_spec = variant_spec(spec, BASES[base_name], FINETUNES[ft_name], scale=scale)
    models, seconds = timed(ft_spec, ("instruct", "reasoning"), base)
    if group != "rewards":
        row = {"variant": ft_name, "seconds": seconds}
        for member in ("instruct", "reasoning"):
            row[member] = evaluate_lm(models[member], tokenizer, dev, plain_text=False)
        for member, model in models.items():  # the merges are the pipeline's own, from folders
            model.to("cpu").save_pretrained(scratch / member, safe_serialization=True)
            tokenizer.save_pretrained(scratch / member)
        row.update(merge_rows(scratch, tokenizer, dev))
        emit(row)
        return results
    dev_pairs = preference_pairs(tokenizer, dev, seed + 1)
    for rw_name, reward in REWARDS.items():
        rw_spec = variant_spec(spec, BASES[base_name], FINETUNES[ft_name], reward, scale)
        trained, seconds = timed(rw_spec, ("reward",), models)
        emit({"variant": f"reward-{rw_name}", "seconds": seconds,
              **evaluate_reward(trained["reward"], dev_pairs, tokenizer.pad_token_id,
                               tokenizer.convert_tokens_to_ids("<think>"))})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--only", help="comma-separated base names (default: all)")
    parser.add_argument("--groups", help="comma-separated fine-tune names and/or 'rewards' (default: all)")
    parser.add_argument("--smoke", action="store_true", help="every run 50x shorter: checks the sweep runs")
    parser.add_argument("--out", type=Path, default=Path("family_sweep.jsonl"))
    args = parser.parse_args()
    from bai_core.demo.builder import kernels_pinned, pinned_environment

    if not kernels_pinned():  # train on the builds' kernels, which torch reads when it loads: start again on them
        os.execve(sys.executable, [sys.executable, *sys.argv], pinned_environment())
    names = args.only.split(",") if args.only else list(BASES)
    unknown = set(names) - set(BASES)
    if unknown:
        sys.exit(f"unknown base {sorted(unknown)} (known: {', '.join(BASES)})")
    jobs = [(args.size, name, group, args.seed, args.device, str(args.out), 0.02 if args.smoke else 1.0)
            for name in names for group in (args.groups.split(",") if args.groups else [*FINETUNES, "rewards"])]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        pool.map(run_base, jobs)


if __name__ == "__main__":
    main()
