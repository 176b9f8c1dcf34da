"""Reward-model variants from a built demo family's members, scored on the RL split's preference pairs.

The family's reward model is its weakest member (the README: brief-answer pairs near chance). This trains reward
models the way the family does (`train_members`' recipe: a score head on a member's weights, Bradley-Terry on the
train problems' pairs) with other schedules or starting members, and scores each on pairs made from RL-split
problems: training data of the RL stage, never trained on by any member and never the eval split. The `recipe` row
retrains the family's own reward model: it must score as the built one does (a check on the script).

Besides the family's two answer styles it scores the style the merges actually answer in ("Ann has 42 apples."):
the RL stage asks this judge about M_bai's answers, so how it ranks those matters as much. `--likelihood` first
ranks the same pairs by each language-model member's own likelihood of the two answers (does the member the judge
starts from already know which is right?); `--split train` scores pairs made from train problems instead (does the
judge fit what it saw?).

    python research/demo-family/reward_sweep.py FAMILY_DIR [--variants recipe,lr3e-4] [--likelihood] [--split rl|train]
        [--pairs 400] [--out rows.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

VARIANTS = {  # changes to the size's reward schedule; "init" picks the starting member
    "recipe": {},
    "lr1e-3": {"learning_rate": 1e-3},
    "lr3e-4": {"learning_rate": 3e-4},
    "from-reasoning": {"init": "reasoning"},
    # a judge deeper than the member it starts from: fresh layers on top of the member's, which see the member's
    # next-token predictions and can compare them with the answer's tokens (the member's own layers are all
    # busy computing the sum; checking it needs depth after that)
    "plus2": {"extra_layers": 2},
    "plus2-lr1e-3": {"extra_layers": 2, "learning_rate": 1e-3},
    # the member's weights kept as they are: only the fresh layers (if any) and the score head learn
    "frozen": {"frozen": True, "learning_rate": 1e-3},
    "plus2-frozen": {"extra_layers": 2, "frozen": True, "learning_rate": 1e-3},
    # a verifier's objective (Cobbe et al. 2021): a score at every token from where chosen and rejected part, pushed
    # up along the chosen answer and down along the rejected one, besides the pairwise loss on the final scores
    "tokens": {"token_level": True, "learning_rate": 1e-3},
    # can the judge learn the brief pairs at all, when they are all it sees?
    "brief-only": {"styles": "brief", "learning_rate": 1e-3},
    "brief-only-600": {"styles": "brief", "learning_rate": 1e-3, "steps": 600},
    "brief-only-lr3e-4-1000": {"styles": "brief", "learning_rate": 3e-4, "steps": 1000, "batch_size": 16},
    "lr3e-4-1000": {"learning_rate": 3e-4, "steps": 1000, "batch_size": 16},
    # the same pairs seen as the recipe's, in 4x as many smaller updates
    "b8-800": {"batch_size": 8, "steps": 800, "learning_rate": 1e-3},
}


def train_token_level(model, pairs, schedule, seed: int, pad_id: int) -> None:
    """Bradley-Terry on the final scores plus a logistic loss on every token after the two answers part."""
    import torch
    import torch.nn.functional as F

    from bai_core.demo.training import pad_batch, train_loop

    def loss(picks: list[int]) -> torch.Tensor:
        sequences = [pairs[i][0] for i in picks] + [pairs[i][1] for i in picks]
        ids, _, attention = pad_batch([(s, [0] * len(s)) for s in sequences], pad_id, model.device)
        hidden = model.model(input_ids=ids, attention_mask=attention).last_hidden_state
        scores = model.score(hidden).squeeze(-1)  # (batch, positions)
        last = attention.sum(1) - 1
        final = scores[torch.arange(len(sequences)), last]
        pairwise = -F.logsigmoid(final[: len(picks)] - final[len(picks):]).mean()
        sign = torch.zeros_like(scores)
        for row, i in enumerate(picks):
            start = parting(*pairs[i])
            sign[row, start: len(pairs[i][0])] = 1.0
            sign[len(picks) + row, start: len(pairs[i][1])] = -1.0
        tokens = (F.softplus(-sign * scores) * sign.abs()).sum() / sign.abs().sum()
        return pairwise + tokens

    def sample(generator):
        return torch.randint(len(pairs), (schedule.batch_size,), generator=generator).tolist()

    train_loop(model, sample, loss, schedule, seed, None)


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


def parting(chosen: list[int], rejected: list[int]) -> int:
    """Where two sequences of a pair part: the length of their common prefix."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    return n


def likelihood_accuracy(model, pairs, think: int) -> dict:
    """How often a language model gives the chosen answer's remainder (from where the two part) a higher
    log-likelihood than the rejected one's: whether the member already knows which answer is right."""
    import torch

    def log_likelihood(sequence: list[int], start: int) -> float:
        ids = torch.tensor([sequence])
        with torch.no_grad():
            log_probs = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        targets = ids[0, 1:]
        return log_probs[torch.arange(len(targets)), targets][start - 1:].sum().item()

    wins = {"brief": [], "reasoning": []}
    for chosen, rejected in pairs:
        start = parting(chosen, rejected)
        wins["reasoning" if think in chosen else "brief"].append(
            log_likelihood(chosen, start) > log_likelihood(rejected, start))
    return {f"{style}_pairs_accuracy": round(sum(w) / len(w), 3) for style, w in wins.items() if w}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", type=Path, help="a built family's folder (family.json and the member folders)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--pairs", type=int, default=400, help="problems to make the scored pairs from")
    parser.add_argument("--split", default="rl", choices=("rl", "train"),
                        help="where the scored problems come from: rl (held out), or train (what the judge saw)")
    parser.add_argument("--likelihood", action="store_true",
                        help="first score each language-model member by its own likelihood of the two answers")
    parser.add_argument("--out", type=Path, default=Path("reward_sweep.jsonl"))
    args = parser.parse_args()
    from bai_core.demo.builder import kernels_pinned, pinned_environment

    if not kernels_pinned():  # train on the builds' kernels, which torch reads when it loads: start again on them
        os.execve(sys.executable, [sys.executable, *sys.argv], pinned_environment())
    names = [name for name in args.variants.split(",") if name]  # "" scores the built judge alone
    unknown = set(names) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variant {sorted(unknown)} (known: {', '.join(VARIANTS)})")

    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, LlamaForSequenceClassification
    from transformers.utils import logging as transformers_logging

    from bai_core.demo.arithmetic import problems
    from bai_core.demo.corpus import preference_pairs
    from bai_core.demo.evaluation import evaluate_reward
    from bai_core.demo.members import VOCAB_SIZE
    from bai_core.demo.members import model_config as _config
    from bai_core.demo.sizes import SIZES
    from bai_core.demo.training import train_reward_model

    torch.set_num_threads(1)
    transformers_logging.disable_progress_bar()
    meta = json.loads((args.family / "family.json").read_text())
    spec, seed = SIZES[meta["size"]], meta["seed"]
    tokenizer = AutoTokenizer.from_pretrained(args.family / "instruct")
    pad, think = tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<think>")
    train = problems("train", seed, spec.a_range, spec.b_range, spec.train_problems)
    held_out = problems(args.split, seed, spec.a_range, spec.b_range, args.pairs)
    train_pairs = preference_pairs(tokenizer, train, seed)  # as train_members makes them
    scored_pairs = preference_pairs(tokenizer, held_out, seed + 1)
    scored_story = story_pairs(tokenizer, held_out, seed + 1)

    def score(model) -> dict:
        row = evaluate_reward(model, scored_pairs, pad, think)
        row["story_pairs_accuracy"] = evaluate_reward(model, scored_story, pad, think)["pairwise_accuracy"]
        return row

    def emit(row: dict) -> None:
        row = {"family": meta["recipe"], "size": meta["size"], "seed": seed, "split": args.split,
               "problems": args.pairs, **row}
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    if args.likelihood:
        for member in ("pretrained", "instruct", "reasoning"):
            model = LlamaForCausalLM.from_pretrained(args.family / member)
            emit({"variant": f"likelihood-{member}", **likelihood_accuracy(model, scored_pairs, think),
                  "story_pairs_accuracy": likelihood_accuracy(model, scored_story, think)["brief_pairs_accuracy"]})
    emit({"variant": "built", **score(LlamaForSequenceClassification.from_pretrained(args.family / "reward"))})
    for name in names:
        changes = dict(VARIANTS[name])
        init = changes.pop("init", spec.reward_init)
        extra_layers = changes.pop("extra_layers", 0)
        frozen = changes.pop("frozen", False)
        token_level = changes.pop("token_level", False)
        styles = changes.pop("styles", "all")
        pairs = [pair for pair in train_pairs if styles == "all" or (think in pair[0]) == (styles == "reasoning")]
        schedule = dataclasses.replace(spec.reward, **changes)
        started = time.perf_counter()
        torch.manual_seed(seed + 3)  # the score head's initial weights, as train_members seeds them
        deeper = dataclasses.replace(spec, layers=spec.layers + extra_layers)
        reward = LlamaForSequenceClassification(_config(deeper, VOCAB_SIZE, num_labels=1))
        start = LlamaForCausalLM.from_pretrained(args.family / init)
        missing, unexpected = reward.model.load_state_dict(start.model.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("layers.") for k in missing), (missing, unexpected)
        if frozen:
            for key, parameter in reward.model.named_parameters():
                if key not in missing:
                    parameter.requires_grad_(False)
        if token_level:
            train_token_level(reward, pairs, schedule, seed + 3, pad)
        else:
            train_reward_model(reward, pairs, schedule, seed + 3, pad)
        emit({"variant": name, "init": init, "extra_layers": extra_layers, "frozen": frozen,
              "token_level": token_level, "styles": styles, "schedule": dataclasses.asdict(schedule),
              "seconds": round(time.perf_counter() - started, 1), **score(reward)})


if __name__ == "__main__":
    main()
