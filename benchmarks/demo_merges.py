"""The README's demo-family figures: the family's own report, and what its BAI merges do on the held-out split.

Builds (or finds) the demo family, merges it with w = 0.5 at each alpha, and prints held-out accuracy, think-block
rate and mean answer length (greedy, the family's eval split) for every model.

    python benchmarks/demo_merges.py [--size demo] [--seed 0] [--alphas 0.1,0.5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bai_core.config import MergeConfig
from bai_core.demo.family import LANGUAGE_MODELS, SIZES, build_family, evaluate_lm, format_report
from bai_core.demo.arithmetic import problems
from bai_core.merge import bai_merge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alphas", default="0.1,0.5")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bai-demo-merges")
    parser.add_argument("--family", type=Path, help="an already built family folder (bai demo build --output)")
    args = parser.parse_args()

    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as transformers_logging

    from bai_core.demo.training import fixed_threads

    transformers_logging.disable_progress_bar()
    if args.family:
        family = args.family
        print((family / "family.json").read_text())
    else:
        family = args.workdir / f"family-{args.size}-seed{args.seed}"
        print(format_report(build_family(family, args.size, args.seed, overwrite=True)))
    spec = SIZES[args.size]
    held_out = problems("eval", args.seed, spec.a_range, spec.b_range, spec.eval_problems)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(family / "reasoning")
    print(f"\nmerges (w = 0.5), held-out split of {len(held_out)} problems, greedy:")
    print(f"{'model':<22}{'accuracy':>9}{'think':>7}{'answer tokens':>15}")
    for alpha in (float(a) for a in args.alphas.split(",")):
        out = args.workdir / f"merge-{args.size}-seed{args.seed}-alpha{alpha:g}"
        bai_merge(MergeConfig(**{m: family / m for m in LANGUAGE_MODELS}, output=out / "bai",
                              stage1_output=out / "sft", alpha=alpha, overwrite=True))
        rows = [("M_sft", out / "sft")] if alpha == float(args.alphas.split(",")[0]) else []
        for name, folder in rows + [(f"M_bai (alpha {alpha:g})", out / "bai")]:
            with fixed_threads(), torch.no_grad():
                m = evaluate_lm(LlamaForCausalLM.from_pretrained(folder), tokenizer, held_out)
            print(f"{name:<22}{m['accuracy']:>9.1%}{m['think_rate']:>7.0%}{m['mean_answer_tokens']:>15.1f}")


if __name__ == "__main__":
    main()
