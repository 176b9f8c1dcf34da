"""Reward-model variants from a built demo family's members, scored on the RL split's preference pairs.

The family's reward model is its weakest member (the README: brief-answer pairs near chance). This trains reward
models the way the family does (`train_members`' recipe: a score head on a member's weights, Bradley-Terry on the
train problems' pairs) with other schedules or starting members, and scores each on pairs made from RL-split
problems: training data of the RL stage, never trained on by any member and never the eval split. The `recipe` row
retrains the family's own reward model: it must score as the built one does (a check on the script).

Besides the family's two answer styles it scores the style the merges actually answer in ("Ann has 42 apples."):
the RL stage asks this judge about M_bai's answers, so how it ranks those matters as much.

    python benchmarks/reward_sweep.py FAMILY_DIR [--variants recipe,lr3e-4] [--pairs 400] [--out rows.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

VARIANTS = {  # changes to the size's reward schedule; "init" picks the starting member
    "recipe": {},
    "lr1e-3": {"learning_rate": 1e-3},
    "lr3e-4": {"learning_rate": 3e-4},
    "lr3e-4-600": {"learning_rate": 3e-4, "steps": 600},
    "lr1e-3-600": {"learning_rate": 1e-3, "steps": 600},
    "from-reasoning": {"init": "reasoning"},
    "from-pretrained": {"init": "pretrained"},
    # a judge deeper than the member it starts from: fresh layers on top of the member's, which see the member's
    # next-token predictions and can compare them with the answer's tokens (the member's own layers are all
    # busy computing the sum; checking it needs depth after that)
    "plus1": {"extra_layers": 1},
    "plus2": {"extra_layers": 2},
    "plus2-lr1e-3": {"extra_layers": 2, "learning_rate": 1e-3},
}


def story_pairs(tokenizer, items, seed: int) -> list[tuple[list[int], list[int]]]:
    """(right, wrong) answers in the base's story style, the merges' style: "Ann has 42 apples." vs a near miss."""
    from bai_core.demo.training import encode_chats

    rng = random.Random(f"story-pairs:{seed}")
    conversations = []
    for p in items:
        wrong = p.answer + rng.choice([-10, -2, -1, 1, 2, 10])
        conversations += [(p.question, f"{p.name} has {p.answer} {p.thing}."),
                          (p.question, f"{p.name} has {wrong} {p.thing}.")]
    ids = [tokens for tokens, _ in encode_chats(tokenizer, conversations)]
    return list(zip(ids[0::2], ids[1::2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", type=Path, help="a built family's folder (family.json and the member folders)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--pairs", type=int, default=400, help="RL-split problems to make pairs from")
    parser.add_argument("--out", type=Path, default=Path("reward_sweep.jsonl"))
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variant {sorted(unknown)} (known: {', '.join(VARIANTS)})")

    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, LlamaForSequenceClassification
    from transformers.utils import logging as transformers_logging

    from bai_core.demo.arithmetic import problems
    from bai_core.demo.corpus import preference_pairs
    from bai_core.demo.family import VOCAB_SIZE, _config
    from bai_core.demo.evaluation import evaluate_reward
    from bai_core.demo.sizes import SIZES
    from bai_core.demo.training import train_reward_model

    torch.set_num_threads(1)
    transformers_logging.disable_progress_bar()
    meta = json.loads((args.family / "family.json").read_text())
    spec, seed = SIZES[meta["size"]], meta["seed"]
    tokenizer = AutoTokenizer.from_pretrained(args.family / "instruct")
    pad, think = tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<think>")
    train = problems("train", seed, spec.a_range, spec.b_range, spec.train_problems)
    held_out = problems("rl", seed, spec.a_range, spec.b_range, args.pairs)
    train_pairs = preference_pairs(tokenizer, train, seed)  # as train_members makes them
    rl_pairs, rl_story = preference_pairs(tokenizer, held_out, seed + 1), story_pairs(tokenizer, held_out, seed + 1)

    def score(model) -> dict:
        row = evaluate_reward(model, rl_pairs, pad, think)
        row["story_pairs_accuracy"] = evaluate_reward(model, rl_story, pad, think)["pairwise_accuracy"]
        return row

    def emit(row: dict) -> None:
        row = {"family": meta["recipe"], "size": meta["size"], "seed": seed, "rl_problems": args.pairs, **row}
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    emit({"variant": "built", **score(LlamaForSequenceClassification.from_pretrained(args.family / "reward"))})
    for name in args.variants.split(","):
        changes = dict(VARIANTS[name])
        init = changes.pop("init", spec.reward_init)
        extra_layers = changes.pop("extra_layers", 0)
        schedule = dataclasses.replace(spec.reward, **changes)
        started = time.perf_counter()
        torch.manual_seed(seed + 3)  # the score head's initial weights, as train_members seeds them
        deeper = dataclasses.replace(spec, layers=spec.layers + extra_layers)
        reward = LlamaForSequenceClassification(_config(deeper, VOCAB_SIZE, num_labels=1))
        start = LlamaForCausalLM.from_pretrained(args.family / init)
        missing, unexpected = reward.model.load_state_dict(start.model.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("layers.") for k in missing), (missing, unexpected)
        train_reward_model(reward, train_pairs, schedule, seed + 3, pad)
        emit({"variant": name, "init": init, "extra_layers": extra_layers, "schedule": dataclasses.asdict(schedule),
              "seconds": round(time.perf_counter() - started, 1), **score(reward)})


if __name__ == "__main__":
    main()
