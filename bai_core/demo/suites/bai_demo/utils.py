"""What the bai_demo task's YAML cannot declare: its data, generated from a seed, and the final-number filter.

lm-eval loads this file by path (`!function utils.<name>`); the logic lives in bai_core.demo, shared with the
family's own evaluator, so both score an answer the same way."""

from __future__ import annotations


def eval_split(size: str = "demo", seed: int | None = None, **_):
    """The held-out eval split of the demo family of `size` and `seed` (default: the seed that size ships at), as
    lm-eval's test split."""
    return _split("eval", "bai_demo", size, seed)


def dev_split(size: str = "demo", seed: int | None = None, **_):
    """A dev split as large as the eval split, drawn from the family's RL split (whose problems the eval split
    never holds), as lm-eval's test split: what `bai tune` scores its trials on."""
    return _split("rl", "bai_demo_dev", size, seed)


def _split(split: str, task: str, size: str, seed: int | None):
    import datasets

    from bai_core.demo.arithmetic import problems
    from bai_core.demo.sizes import SIZES, seed_or_shipped

    if size not in SIZES:
        raise ValueError(f"{task}: unknown size {size!r} in the task metadata (known: {', '.join(SIZES)})")
    spec = SIZES[size]
    items = problems(split, seed_or_shipped(size, seed), spec.a_range, spec.b_range, spec.eval_problems)
    rows = [{"question": p.question, "answer": str(p.answer)} for p in items]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def final_numbers(responses: list[list[str]], docs) -> list[list[str]]:
    """Each response's final answer: the number after </think> when the model thought (none if it never closed the
    block), else its last number; "[no answer]" where there is none. lm-eval strips the think block itself when run
    with `think_end_token`; this does the same when it is not."""
    from bai_core.demo.arithmetic import extract_answer

    def final(text: str) -> str:
        answer = extract_answer(text, "reasoning" if "<think>" in text or "</think>" in text else "instruct")
        return "[no answer]" if answer is None else str(answer)

    return [[final(text) for text in row] for row in responses]
