"""The shape of a demo family recipe: the model's size and each member's training run. The values per size live
in sizes.py; a family's recipe id hashes those values and the code that uses them (this file included)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """One training run: its length, batch and AdamW settings; linear warmup, then cosine decay to 10% of the peak."""

    steps: int
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.01
    replay: float = 0.0  # fine-tunes: share of each batch drawn from the pretraining text
    anchor: float = 0.0  # fine-tunes: weight of an L2 pull toward the starting (base) weights

    def rate(self, step: int) -> float:
        if step < self.warmup:
            return self.learning_rate * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class FamilySize:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    pretrain: Schedule
    instruct: Schedule
    reasoning: Schedule
    reward: Schedule
    train_problems: int = 20000
    eval_problems: int = 200
    # Two-digit plus/minus one-digit: a tiny model can learn to answer these directly (two-digit operands on both
    # sides it cannot, in minutes), and the step-by-step trace still makes reasoning answers ~10x longer.
    a_range: tuple[int, int] = (10, 99)
    b_range: tuple[int, int] = (1, 9)
    # What the base reads besides the stories (see pretraining_corpus) and where the reward model starts.
    corpus: tuple[str, ...] = ("stories", "worked", "facts", "questions", "dialogues")
    reward_init: str = "pretrained"
