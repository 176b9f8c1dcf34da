"""How the demo family's recipe was chosen: train variants on the train split minus a dev split, score them on dev.

The held-out eval split is never looked at here. The train problems are split once more by a hash of their
arithmetic: ~15% become `dev` problems (never trained on, by any member), the rest are trained on. Each variant
changes the size's recipe (pretraining length and corpus, fine-tune learning rate, length, replay and anchor, reward
model start and length), trains the four members in memory, and prints one JSON line with dev-split figures for the
members and for the merges over the paper's grid (w = 0.5; alpha 0.1 ... 0.9), plus seconds per phase.

Each fine-tune variant, and the reward variants together, are one job that pretrains its base itself. Jobs run in
parallel, one torch
thread each (`--jobs`); `--device cuda` trains on a GPU instead (the figures differ from CPU bits, not in kind).

    python benchmarks/family_sweep.py [--size demo] [--device cpu|cuda] [--jobs N] [--out results.jsonl]
        [--only BASE[,BASE...]]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import multiprocessing
import sys
import time
from pathlib import Path

from bai_core.demo.evaluation import MERGE_ALPHAS, MERGE_INSTRUCT_WEIGHT

DEV_SHARE = 0.15

# Bases: how the pretrained model is made. Fine-tunes and reward models: what is trained from each base.
BASES = {
    # round 1 (docs/family-sweep/round1-h200.jsonl): no merge kept the skill from any of these
    # "p1200": {"pretrain": {"steps": 1200}},
    # "p2000": {"pretrain": {"steps": 2000}},
    # "p1200-q": {"pretrain": {"steps": 1200}, "corpus": ("stories", "worked", "facts", "questions")},
    # "p2000-q": {"pretrain": {"steps": 2000}, "corpus": ("stories", "worked", "facts", "questions")},
    # round 2 (docs/family-sweep/round2-h200.jsonl), dialogues answered "Ann has 42 marbles.": merges kept the skill
    # but never ended in a number
    # "p2000-d": {"pretrain": {"steps": 2000}, "corpus": ("stories", "worked", "facts", "dialogues")},
    # "p2000-qd": {"pretrain": {"steps": 2000}, "corpus": ("stories", "worked", "facts", "questions", "dialogues")},
    "recipe": {},  # the size's recipe as it stands in bai_core/demo/family.py
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
    "from-instruct": {"init": "instruct", "steps": 400, "learning_rate": 1e-3},
    "from-pretrained": {"init": "pretrained", "steps": 400, "learning_rate": 1e-3},
    "from-reasoning": {"init": "reasoning", "steps": 400, "learning_rate": 1e-3},
}
REFERENCE_FINETUNE = "recipe"


def is_dev(problem, seed: int) -> bool:
    digest = hashlib.sha256(f"dev:{seed}:{problem.op}:{problem.a}:{problem.b}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < DEV_SHARE


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


def merged(models: dict, w: float, alpha: float | None):
    """M_sft (alpha None) or M_bai, by the same weighted sums as the merge engine, in memory."""
    model = copy.deepcopy(models["pretrained"])
    p, i, r = (models[m].state_dict() for m in ("pretrained", "instruct", "reasoning"))
    state = {}
    for name, tensor in p.items():
        sft = w * i[name].float() + (1 - w) * r[name].float()
        state[name] = sft if alpha is None else alpha * tensor.float() + (1 - alpha) * sft
    model.load_state_dict(state)
    return model


def run_base(args: tuple) -> list[dict]:
    size, base_name, group, seed, device, out, scale = args
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerFast

    from bai_core.demo import family as F
    from bai_core.demo.arithmetic import problems
    from bai_core.demo.corpus import preference_pairs
    from bai_core.demo.evaluation import _generate, evaluate_lm, evaluate_reward
    from bai_core.demo.tokenizer import CHAT_TEMPLATE, write_char_tokenizer
    from bai_core.demo.training import encode_chats, encode_texts, train_causal_lm, train_reward_model

    torch.set_num_threads(1)
    spec = F.SIZES[size]
    scratch = Path(out).parent / f".tok-{base_name}-{group}"
    write_char_tokenizer(scratch, CHAT_TEMPLATE, vocab_size=F.VOCAB_SIZE)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(scratch, local_files_only=True)
    everything = problems("train", seed, spec.a_range, spec.b_range, spec.train_problems)
    train = [p for p in everything if not is_dev(p, seed)]
    dev = list({(p.op, p.a, p.b): p for p in everything if is_dev(p, seed)}.values())
    pad = tokenizer.pad_token_id
    results = []

    def emit(row: dict) -> None:
        row = {"base": base_name, "device": device, **row}
        results.append(row)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    base_spec = variant_spec(spec, BASES[base_name], scale=scale)
    torch.manual_seed(seed)
    pretraining = encode_texts(tokenizer, F.pretraining_corpus(train, seed, base_spec.corpus))
    chat = {"instruct": encode_chats(tokenizer, [(p.question, p.instruct_answer()) for p in train]),
            "reasoning": encode_chats(tokenizer, [(p.question, p.reasoning_answer()) for p in train])}
    started = time.perf_counter()
    base = LlamaForCausalLM(F._config(base_spec, F.VOCAB_SIZE)).to(device)
    train_causal_lm(base, pretraining, base_spec.pretrain, seed, pad)
    seconds = time.perf_counter() - started
    if group != "rewards":
        emit({"variant": "pretrained", "group": group, "seconds": round(seconds, 1), "dev_problems": len(dev),
              "train_problems": len(train), **evaluate_lm(base, tokenizer, dev)})
    ft_name = REFERENCE_FINETUNE if group == "rewards" else group
    ft_spec = variant_spec(spec, BASES[base_name], FINETUNES[ft_name], scale=scale)
    models, seconds = {"pretrained": base}, {}
    for offset, member in enumerate(("instruct", "reasoning"), 1):
        started = time.perf_counter()
        models[member] = copy.deepcopy(base)
        train_causal_lm(models[member], chat[member], getattr(ft_spec, member), seed + offset, pad,
                        replay=pretraining)
        seconds[member] = round(time.perf_counter() - started, 1)
    if group != "rewards":
        row = {"variant": ft_name, "seconds": seconds}
        for member in ("instruct", "reasoning"):
            row[member] = evaluate_lm(models[member], tokenizer, dev, plain_text=False)
        sft = merged(models, MERGE_INSTRUCT_WEIGHT, None)
        row["M_sft"] = evaluate_lm(sft, tokenizer, dev, plain_text=False)
        row["samples"] = {name: [text for text, _, _ in _generate(model, tokenizer, [
            tokenizer.apply_chat_template([{"role": "user", "content": p.question}], add_generation_prompt=True,
                                          tokenize=False) for p in dev[:4]], 64)]
            for name, model in [("pretrained", base), ("M_sft", sft),
                                ("M_bai@0.5", merged(models, MERGE_INSTRUCT_WEIGHT, 0.5))]}
        for alpha in MERGE_ALPHAS:
            row[f"M_bai@{alpha:g}"] = evaluate_lm(merged(models, MERGE_INSTRUCT_WEIGHT, alpha), tokenizer, dev,
                                                  plain_text=False)
        emit(row)
        return results
    pairs = preference_pairs(tokenizer, train, seed)
    dev_pairs = preference_pairs(tokenizer, dev, seed + 1)
    for rw_name, reward in REWARDS.items():
        rw_spec = variant_spec(spec, BASES[base_name], None, reward, scale)
        started = time.perf_counter()
        model = LlamaForSequenceClassification(F._config(rw_spec, F.VOCAB_SIZE, num_labels=1)).to(device)
        model.model.load_state_dict(models[rw_spec.reward_init].model.state_dict())
        train_reward_model(model, pairs, rw_spec.reward, seed + 3, pad)
        emit({"variant": f"reward-{rw_name}", "seconds": round(time.perf_counter() - started, 1),
              **evaluate_reward(model, dev_pairs, pad)})
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
