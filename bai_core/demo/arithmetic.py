"""The demo task: arithmetic word problems with verifiable answers and a natural step-by-step solution.

    "Ann has 37 marbles and gets 5 more. How many now?"        -> 42
    "Ben has 83 stickers and gives away 9. How many left?"     -> 74

Problems are generated deterministically from a seed. Splits are by the arithmetic itself (operation and operands),
hashed with the seed, so no train problem is ever an RL prompt or an eval problem in other words.

The same problem appears in three formats, one per member of the family:
- plain (pretraining text): a short story that states the result, no question and answer;
- instruct (chat): the answer, directly and briefly ("37+5=42");
- reasoning (chat): a digit-by-digit trace inside <think> ... </think>, then the answer -- the "distillation data" a
  programmatic teacher writes.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

NAMES = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kim", "Lev", "Mia", "Noor", "Otto",
         "Pia"]
THINGS = ["marbles", "stickers", "apples", "coins", "books", "shells", "stamps", "cards", "pens", "beads"]
SPLITS = ("train", "rl", "eval")


@dataclass(frozen=True)
class Problem:
    op: str  # "+" or "-"
    a: int
    b: int
    name: str
    thing: str

    @property
    def answer(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def question(self) -> str:
        # Short, with the numbers near the end: a tiny model learns to find them in a few hundred steps.
        if self.op == "+":
            return f"{self.name} has {self.a} {self.thing} and gets {self.b} more. How many now?"
        return f"{self.name} has {self.a} {self.thing} and gives away {self.b}. How many left?"

    def plain(self) -> str:
        """Pretraining text: the story and its result, as prose."""
        verb = "gets" if self.op == "+" else "gives away"
        more = " more" if self.op == "+" else ""
        return (f"{self.name} has {self.a} {self.thing} and {verb} {self.b}{more}, so {self.name} has "
                f"{self.answer} {self.thing}. {self.a} {self.op} {self.b} = {self.answer}.")

    def instruct_answer(self) -> str:
        """Direct and brief: the equation and its result, no working."""
        return f"{self.a}{self.op}{self.b}={self.answer}"

    def reasoning_answer(self) -> str:
        return f"<think>{trace(self.op, self.a, self.b)}</think>{self.answer}"


def trace(op: str, a: int, b: int) -> str:
    """Column arithmetic, right to left, one digit per step: what a patient teacher writes down."""
    width = max(len(str(a)), len(str(b)))
    da, db = str(a).zfill(width)[::-1], str(b).zfill(width)[::-1]
    steps, carry, digits = [], 0, []
    for i in range(width):
        x, y = int(da[i]), int(db[i])
        if op == "+":
            total = x + y + carry
            steps.append(f"{x}+{y}" + (f"+{carry}" if carry else "") + f"={total}")
            digits.append(total % 10)
            carry = total // 10
        else:
            top = x - carry
            borrow = 1 if top < y else 0
            steps.append(f"{x}" + (f"-{carry}" if carry else "") + f"-{y}" + ("+10" if borrow else "")
                         + f"={top + 10 * borrow - y}")
            digits.append(top + 10 * borrow - y)
            carry = borrow
    if op == "+" and carry:
        digits.append(carry)
        steps.append(f"carry {carry}")
    result = int("".join(map(str, reversed(digits))))
    return ", ".join(steps) + f". {a}{op}{b}={result}."


def split_of(op: str, a: int, b: int, seed: int, eval_share: float = 0.10, rl_share: float = 0.10) -> str:
    digest = hashlib.sha256(f"{seed}:{op}:{a}:{b}".encode()).digest()
    u = int.from_bytes(digest[:8], "little") / 2**64
    return "eval" if u < eval_share else "rl" if u < eval_share + rl_share else "train"


def problems(split: str, seed: int, a_range: tuple[int, int], b_range: tuple[int, int],
             count: int) -> list[Problem]:
    """`count` problems of one split, operands in the inclusive ranges (arithmetic repeats, in new wording, when the
    split has fewer distinct problems than `count`)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    pool = [(op, a, b) for op in "+-" for a in range(a_range[0], a_range[1] + 1)
            for b in range(b_range[0], b_range[1] + 1) if (op == "+" or a >= b) and split_of(op, a, b, seed) == split]
    rng = random.Random(f"{seed}:{split}")
    rng.shuffle(pool)
    chosen = [pool[i % len(pool)] for i in range(count)]
    return [Problem(op, a, b, rng.choice(NAMES), rng.choice(THINGS)) for op, a, b in chosen]


_NUMBER = re.compile(r"-?\d+")


def extract_answer(text: str, style: str) -> int | None:
    """The model's final answer: the last number of a brief answer, or the first number after </think>."""
    if style == "reasoning":
        if "</think>" not in text:
            return None
        match = _NUMBER.search(text.split("</think>", 1)[1])
        return int(match.group()) if match else None
    numbers = _NUMBER.findall(text)
    return int(numbers[-1]) if numbers else None
