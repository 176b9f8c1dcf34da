"""A built demo family's members and merges scored on another split than the eval split: is a figure the split's or
the model's?

The family's report scores the held-out eval split (200 items over ~150 distinct problems). This scores the same
models the same way (greedy, chat format, the merges by the pipeline's engine, the reward model on preference pairs)
on the RL split's problems, which no member trained on and which the family's recipe was never chosen on either,
and checks the family's own targets there. It is how the shipped family was chosen among builds
(research/demo-family/shipped.md): never on the eval split.

    python research/demo-family/family_on_split.py FAMILY_DIR [--split rl] [--problems 400] [--out rows.jsonl]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from family_sweep import merge_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", type=Path, help="a built family's folder (family.json and the member folders)")
    parser.add_argument("--split", default="rl", choices=("rl", "eval"))
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("family_on_split.jsonl"))
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, LlamaForCausalLM
    from transformers.utils import logging as transformers_logging

    from bai_core.demo.arithmetic import problems
    from bai_core.demo.corpus import preference_pairs
    from bai_core.demo.evaluation import evaluate_lm, evaluate_reward
    from bai_core.demo.sizes import SIZES

    torch.set_num_threads(1)
    transformers_logging.disable_progress_bar()
    meta = json.loads((args.family / "family.json").read_text())
    spec, seed = SIZES[meta["size"]], meta["seed"]
    tokenizer = AutoTokenizer.from_pretrained(args.family / "reasoning")
    items = problems(args.split, seed, spec.a_range, spec.b_range, args.problems)
    row = {"family": meta["recipe"], "size": meta["size"], "seed": seed, "split": args.split,
           "problems": len(items), "distinct": len({(p.op, p.a, p.b) for p in items})}
    for member in ("pretrained", "instruct", "reasoning"):
        model = LlamaForCausalLM.from_pretrained(args.family / member)
        row[member] = evaluate_lm(model, tokenizer, items)  # with the plain-text probe, as the report
    row.update(merge_rows(args.family, tokenizer, items))
    reward = AutoModelForSequenceClassification.from_pretrained(args.family / "reward")
    row["reward"] = evaluate_reward(reward, preference_pairs(tokenizer, items, seed + 1), tokenizer.pad_token_id,
                                    tokenizer.convert_tokens_to_ids("<think>"))
    row["targets"] = targets(row)
    row["targets_met"] = sum(row["targets"].values())
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


def targets(row: dict) -> dict[str, bool]:
    """The family's own targets (the family issue's): a base that knows the domain, fine-tunes that do their job,
    merges that keep the skill and finish their answers, a judge better than chance."""
    merges = [v for k, v in row.items() if k.startswith(("M_sft", "M_bai@"))]
    return {
        "base plain probe >= 60%": row["pretrained"]["plain_text_accuracy"] >= 0.60,
        "instruct >= 85%": row["instruct"]["accuracy"] >= 0.85,
        "reasoning >= 85%, thinks in every answer": (row["reasoning"]["accuracy"] >= 0.85
                                                      and row["reasoning"]["think_rate"] == 1.0),
        "reasoning answers >= 3x instruct's tokens": (row["reasoning"]["mean_answer_tokens"]
                                                      >= 3 * row["instruct"]["mean_answer_tokens"]),
        "M_sft >= 70%": row["M_sft"]["accuracy"] >= 0.70,
        "M_bai alpha 0.1 >= 60%": row["M_bai@0.1"]["accuracy"] >= 0.60,
        "M_bai alpha 0.5 >= 40%": row["M_bai@0.5"]["accuracy"] >= 0.40,
        "every merge finishes >= 95% of its answers": all(m["finished_rate"] >= 0.95 for m in merges),
        "reward model >= 75% pairwise": row["reward"]["pairwise_accuracy"] >= 0.75,
    }


if __name__ == "__main__":
    main()
