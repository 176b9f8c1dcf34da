"""When does the demo base learn the arithmetic? Its learning curve, measured on the dev split.

Pretrains the demo size's base on the train split minus the dev split (as research/demo-family/family_sweep.py does; the eval
split is never looked at), with the pretraining schedule's settings overridden from the command line, and every
`--every` steps prints one JSON line: loss, greedy accuracy on the plain-text probe and in the chat format, on the
dev problems (never trained on) and on as many train problems (trained on: memorized or learned?).

This is how the recipe's pretraining weight decay was chosen (README, "The demo family"): at 0.01 the base was still
near 20% on dev after 2000 steps; at 0.1 it learned the arithmetic (dev and train alike) before the schedule ended.

    python research/demo-family/pretraining_curve.py --steps 2000 --weight-decay 0.1 [--every 250] [--out curve.jsonl]
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

from family_sweep import char_tokenizer, train_dev_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="pretraining steps (default: the size's)")
    parser.add_argument("--weight-decay", type=float, help="AdamW weight decay (default: the size's)")
    parser.add_argument("--learning-rate", type=float, help="peak learning rate (default: the size's)")
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--out", type=Path, help="also append the lines to this file")
    args = parser.parse_args()
    from bai_core.demo.builder import kernels_pinned, pinned_environment

    if not kernels_pinned():  # train on the builds' kernels, which torch reads when it loads: start again on them
        os.execve(sys.executable, [sys.executable, *sys.argv], pinned_environment())

    import torch
    from transformers import LlamaForCausalLM

    from bai_core.demo import members as F
    from bai_core.demo.corpus import pretraining_corpus
    from bai_core.demo.evaluation import evaluate_lm
    from bai_core.demo.sizes import SIZES
    from bai_core.demo.training import encode_texts, train_causal_lm

    torch.set_num_threads(1)
    spec = SIZES[args.size]
    changes = {"steps": args.steps, "weight_decay": args.weight_decay, "learning_rate": args.learning_rate}
    schedule = dataclasses.replace(spec.pretrain, **{k: v for k, v in changes.items() if v is not None})
    tokenizer = char_tokenizer()
    train, dev = train_dev_split(spec, args.seed)
    seen = list({(p.op, p.a, p.b): p for p in train}.values())
    random.Random(1).shuffle(seen)
    seen = seen[: len(dev)]
    texts = encode_texts(tokenizer, pretraining_corpus(train, args.seed, spec.corpus))
    # Built here rather than by train_members, which gives no handle on the model while it trains; the same seed
    # gives the same initial weights as the base it trains.
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(F.model_config(spec, F.VOCAB_SIZE))
    started = time.perf_counter()

    def measure(step: int, total: int, loss: float) -> None:
        if step % args.every and step != total:
            return
        model.eval()
        on_dev, on_train = evaluate_lm(model, tokenizer, dev), evaluate_lm(model, tokenizer, seen)
        model.train()
        line = json.dumps({"steps": total, "weight_decay": schedule.weight_decay,
                           "learning_rate": schedule.learning_rate, "step": step, "loss": round(loss, 3),
                           "seconds": round(time.perf_counter() - started),
                           "dev_plain": on_dev["plain_text_accuracy"], "dev_chat": on_dev["accuracy"],
                           "train_plain": on_train["plain_text_accuracy"], "train_chat": on_train["accuracy"]})
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(line + "\n")

    train_causal_lm(model, texts, schedule, args.seed, tokenizer.pad_token_id, on_step=measure)


if __name__ == "__main__":
    main()
