"""A built demo family's members and merges scored on another split than the eval split: is a figure the split's or
the model's?

The family's report scores the held-out eval split (200 items over ~150 distinct problems). This scores the same
models the same way (greedy, chat format, the merges by the pipeline's engine) on the RL split's problems, which no
member trained on and which the family's recipe was never chosen on either.

    python benchmarks/family_on_split.py FAMILY_DIR [--split rl] [--problems 400] [--out rows.jsonl]
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
    from transformers import AutoTokenizer, LlamaForCausalLM
    from transformers.utils import logging as transformers_logging

    from bai_core.demo.arithmetic import problems
    from bai_core.demo.evaluation import evaluate_lm
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
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
