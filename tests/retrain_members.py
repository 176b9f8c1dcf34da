"""Trains a demo family size's members the way the recipe sweep does, one `train_members` call at a time, each from
members already trained (the base saved and loaded back first), and saves them to OUT/<member>.

Run by tests/test_demo_family.py in a process of its own, started on the builds' kernels (a process cannot switch
its kernels once torch has loaded), beside a `bai demo build` of the same size and seed: both must give the same
weights, to the bit.

    python tests/retrain_members.py SIZE OUT
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main(size: str, out: Path) -> None:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from bai_core.demo.arithmetic import problems
    from bai_core.demo.builder import kernels_pinned
    from bai_core.demo.members import VOCAB_SIZE, train_members
    from bai_core.demo.sizes import SIZES
    from bai_core.demo.tokenizer import CHAT_TEMPLATE, write_char_tokenizer

    assert kernels_pinned(), "start this on the builds' kernels (bai_core.demo.builder.pinned_environment())"
    with tempfile.TemporaryDirectory() as scratch:
        write_char_tokenizer(Path(scratch), CHAT_TEMPLATE, vocab_size=VOCAB_SIZE)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(scratch, local_files_only=True)
    spec = SIZES[size]
    train = problems("train", 0, spec.a_range, spec.b_range, spec.train_problems)
    quiet = lambda *_: None  # noqa: E731
    base = train_members(spec, tokenizer, train, 0, quiet, members=("pretrained",))["pretrained"]
    base.save_pretrained(out / "pretrained")
    loaded = {"pretrained": LlamaForCausalLM.from_pretrained(out / "pretrained")}
    models = train_members(spec, tokenizer, train, 0, quiet, members=("instruct", "reward"), trained=loaded)
    models.update(train_members(spec, tokenizer, train, 0, quiet, members=("reasoning",), trained=loaded))
    for member in ("instruct", "reasoning", "reward"):
        models[member].save_pretrained(out / member)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
