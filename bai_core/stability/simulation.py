"""Simulated RL runs with real sampling noise: what the detectors can see at a given number of completions a step.

A step's record is what bai's metrics.jsonl holds: the mean length and reward over the step's completions, and per
length bucket the mean reward and the count. Each completion falls into a length bucket (by the bucket shares), has
a length drawn evenly within it, and a reward of its bucket's level at that step plus Gaussian noise of `spread`
(the per-completion spread of rewards within a step, ~1.2 for the demo's learned judge).

Each step also has the policy's entropy: the mean over its completions of a per-completion entropy, the step's
level plus Gaussian noise of `entropy_spread`. The level starts at `entropy_start` and, in every shape, declines
slowly by up to `entropy_decline` of itself over the run (drawn per run), as healthy GRPO runs' entropy does.

Five shapes:
- `healthy`: the shares stay; every bucket's level is flat or rises slowly (by up to `rise` over the run).
- `hockey_stick`: healthy, but the long bucket's level falls by `dip` of itself from `dip_from` to `dip_at` (the
  paper's Figure 2), then climbs back linearly over `recovery` steps.
- `collapse`: healthy rewards, but from `collapse_from` to `collapse_at` the short bucket takes `collapse_share` of
  the completions, so the mean length falls below half of its start and stays there.
- `entropy_collapse`: healthy, but from `entropy_from` to `entropy_at` the entropy falls to `entropy_floor` of
  its start and stays there.
- `entropy_spike`: healthy, but at a step drawn between `spike_earliest` and `spike_latest` the entropy jumps to
  `spike_height` x its level for `spike_steps` steps.

Used by benchmarks/detector_power.py (the full sweep) and the detector tests (two batch sizes, seeded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Bucket (16 tokens wide) -> share of completions: the demo family's RL from the reasoning model (Paradigm 3) has
# most answers at 16-48 tokens, a long tail, and few very short ones.
DEMO_SHARES = {"0-16": 0.05, "16-32": 0.45, "32-48": 0.25, "48-64": 0.15, "64-80": 0.07, "80-96": 0.03}
DEMO_LEVELS = {"0-16": 1.0, "16-32": 2.6, "32-48": 2.7, "48-64": 2.4, "64-80": 2.0, "80-96": 1.6}


@dataclass(frozen=True)
class Shape:
    kind: str = "healthy"  # healthy, hockey_stick, collapse, entropy_collapse, entropy_spike
    steps: int = 600
    spread: float = 1.2
    shares: dict = field(default_factory=lambda: dict(DEMO_SHARES))
    levels: dict = field(default_factory=lambda: dict(DEMO_LEVELS))
    rise: float = 0.3  # healthy: a bucket's level rises by up to this over the run (drawn per run)
    long_bucket: str = "32-48"  # where the hockey stick is planted (the paper: the long responses)
    dip: float = 0.45  # share of its level the long bucket loses
    dip_from: int = 20
    dip_at: int = 60
    recovery: int = 400
    short_bucket: str = "0-16"
    collapse_share: float = 0.8
    collapse_from: int = 20
    collapse_at: int = 80
    entropy_start: float = 0.6
    entropy_decline: float = 0.4
    entropy_spread: float = 0.15
    entropy_floor: float = 0.05
    entropy_from: int = 20
    entropy_at: int = 80
    spike_height: float = 2.5
    spike_steps: int = 3
    spike_earliest: int = 100
    spike_latest: int = 500


def _ramp(t: np.ndarray, start: float, end: float) -> np.ndarray:
    """0 before `start`, 1 after `end`, linear between."""
    return np.clip((t - start) / max(end - start, 1), 0.0, 1.0)


def bucket_levels(shape: Shape, rises: dict[str, float]) -> dict[str, np.ndarray]:
    """Each bucket's mean reward at each step (1-based steps)."""
    t = np.arange(1, shape.steps + 1, dtype=float)
    levels = {name: level + rises[name] * t / shape.steps for name, level in shape.levels.items()}
    if shape.kind == "hockey_stick":
        name = shape.long_bucket
        depth = shape.dip * shape.levels[name]
        fall = _ramp(t, shape.dip_from, shape.dip_at)
        back = _ramp(t, shape.dip_at, shape.dip_at + shape.recovery)
        levels[name] = levels[name] - depth * (fall - back)
    return levels


def bucket_shares(shape: Shape) -> np.ndarray:
    """steps x buckets: the share of each bucket at each step."""
    names = list(shape.shares)
    base = np.array([shape.shares[n] for n in names], dtype=float)
    base /= base.sum()
    shares = np.tile(base, (shape.steps, 1))
    if shape.kind == "collapse":
        t = np.arange(1, shape.steps + 1, dtype=float)
        toward = np.zeros(len(names))
        toward[names.index(shape.short_bucket)] = 1.0
        mix = shape.collapse_share * _ramp(t, shape.collapse_from, shape.collapse_at)[:, None]
        shares = (1 - mix) * shares + mix * toward
    return shares


def entropy_level(shape: Shape, decline: float, spike_at: int) -> np.ndarray:
    """The entropy's level at each step (1-based steps)."""
    t = np.arange(1, shape.steps + 1, dtype=float)
    level = shape.entropy_start * (1 - decline * t / shape.steps)
    if shape.kind == "entropy_collapse":
        level = level * (1 - (1 - shape.entropy_floor) * _ramp(t, shape.entropy_from, shape.entropy_at))
    if shape.kind == "entropy_spike":
        level = np.where((t >= spike_at) & (t < spike_at + shape.spike_steps), shape.spike_height * level, level)
    return level


def simulate_run(shape: Shape, completions: int, seed: int) -> list[dict]:
    """One run's metrics.jsonl records."""
    rng = np.random.default_rng(seed)
    names = list(shape.shares)
    bounds = {name: tuple(int(x) for x in name.split("-")) for name in names}
    rises = {name: float(rng.uniform(0, shape.rise)) for name in names}
    levels, shares = bucket_levels(shape, rises), bucket_shares(shape)
    # the entropy draws its own numbers, so the length and reward of a seed are those they were before it existed
    entropy_rng = np.random.default_rng([seed, 1])
    entropy = entropy_level(shape, float(entropy_rng.uniform(0, shape.entropy_decline)),
                            int(entropy_rng.integers(shape.spike_earliest, shape.spike_latest + 1)))
    records = []
    for i in range(shape.steps):
        counts = rng.multinomial(completions, shares[i])
        record: dict = {"step": i + 1}
        total_reward = total_length = 0.0
        for name, n in zip(names, counts):
            if not n:
                continue
            rewards = levels[name][i] + rng.normal(0.0, shape.spread, n)
            lo, hi = bounds[name]
            total_length += float(rng.integers(lo, hi, n).sum())
            total_reward += float(rewards.sum())
            record[f"reward_by_length/{name}"] = float(rewards.mean())
            record[f"count_by_length/{name}"] = int(n)
        record["reward/mean"] = total_reward / completions
        record["length/mean"] = total_length / completions
        record["entropy"] = float(entropy[i] + entropy_rng.normal(0.0, shape.entropy_spread / np.sqrt(completions)))
        records.append(record)
    return records
