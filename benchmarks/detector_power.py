"""What the detectors can see on noisy runs: false alarms on healthy runs and detection of the paper's two
instabilities and of entropy collapse and spikes, at 16, 64, 256 and 1024 completions a step, on simulated runs
with real sampling noise; then the entropy detector near its thresholds (floors 0.1-0.3, spikes 1.5-3x).

The noise model (bai_core/stability/simulation.py): each completion falls into a 16-token length bucket by the demo's
shares, gets a length drawn evenly within it and a reward of its bucket's level plus Gaussian noise (spread 1.2,
the demo judge's). A step's record holds the mean length, the mean reward, and each bucket's mean reward and count.
- healthy: levels flat or rising slowly (up to +0.3 over the run), shares fixed;
- hockey stick: the 32-48 bucket falls 45% of its level from step 20 to 60, then climbs back over 400 steps;
- collapse: from step 20 to 80 the 0-16 bucket takes 80% of the completions (the mean length falls below half);
- entropy collapse: entropy (0.6 at the start, per-completion spread 0.15, declining by up to 40% over the run in
  every shape) falls to 5% of its start from step 20 to 80;
- entropy spike: the entropy is 2.5x its level for 3 steps, at a step drawn between 100 and 500.
Runs are 600 steps. Targets (issue 22): false alarms <= 2% at every batch size; each instability caught in >= 90%
of runs at 64 completions a step and above.

    python benchmarks/detector_power.py [--runs 200] [--completions 16,64,256,1024] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bai_core.stability.curves import Curves
from bai_core.stability.simulation import Shape, simulate_run


def verdicts(shape: Shape, completions: int, seed: int):
    curves = Curves("bai")
    for record in simulate_run(shape, completions, seed):
        curves.add(record)
    return curves.diagnose(planned_steps=shape.steps)


def rates(completions: int, runs: int, seed: int) -> dict[str, float]:
    healthy = [verdicts(Shape("healthy"), completions, seed + i) for i in range(runs)]
    hockey = [verdicts(Shape("hockey_stick"), completions, seed + runs + i) for i in range(runs)]
    collapse = [verdicts(Shape("collapse"), completions, seed + 2 * runs + i) for i in range(runs)]
    entropy_collapse = [verdicts(Shape("entropy_collapse"), completions, seed + 3 * runs + i) for i in range(runs)]
    spike = [verdicts(Shape("entropy_spike"), completions, seed + 4 * runs + i) for i in range(runs)]
    planted = [d.reward_hockey_stick_by_length[Shape().long_bucket] for d in hockey]
    timed = [(v.descent_steps, v.recovery_steps) for v in planted if v.detected]
    return {"false alarm: collapse": sum(d.sequence_length_collapse.detected for d in healthy) / runs,
            "false alarm: hockey stick": sum(d.hockey_stick_detected for d in healthy) / runs,
            "caught: hockey stick": sum(d.hockey_stick_detected for d in hockey) / runs,
            "caught: collapse": sum(d.sequence_length_collapse.detected for d in collapse) / runs,
            "false alarm: entropy": sum(d.entropy.detected for d in healthy) / runs,
            "caught: entropy collapse": sum("collapse" in d.entropy.kinds for d in entropy_collapse) / runs,
            "caught: entropy spike": sum("spike" in d.entropy.kinds for d in spike) / runs,
            "false alarm: entropy, on the length / reward shapes": sum(
                d.entropy.detected for d in hockey + collapse) / (2 * runs),
            "descent steps": _spread([t[0] for t in timed]), "recovery steps": _spread([t[1] for t in timed])}


FLOORS = (0.1, 0.2, 0.3)  # the entropy falls to this share of its start (the detector's threshold: 0.2)
HEIGHTS = (1.5, 2.0, 2.5, 3.0)  # the spike's height over the level (the detector's threshold: 2x)


def entropy_limits(completions: int, runs: int, seed: int) -> dict[str, float]:
    """Where the entropy detector's thresholds bite: the share of runs caught as the planted collapse's floor and
    the planted spike's height move across the thresholds."""
    row = {}
    for floor in FLOORS:
        shape = Shape("entropy_collapse", entropy_floor=floor)
        row[f"collapse to {floor:g} x E0"] = sum(
            "collapse" in verdicts(shape, completions, seed + 5 * runs + i).entropy.kinds for i in range(runs)) / runs
    for height in HEIGHTS:
        shape = Shape("entropy_spike", spike_height=height)
        row[f"spike {height:g}x"] = sum(
            "spike" in verdicts(shape, completions, seed + 6 * runs + i).entropy.kinds for i in range(runs)) / runs
    return row


def _spread(values: list[int]) -> str:
    """Median (10th-90th percentile) of the caught runs' times."""
    if not values:
        return "-"
    low, mid, high = np.percentile(values, [10, 50, 90])
    return f"{mid:.0f} ({low:.0f}-{high:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs of each shape at each batch size")
    parser.add_argument("--completions", default="16,64,256,1024")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(n) for n in args.completions.split(",")]
    started = time.perf_counter()
    table = {n: rates(n, args.runs, args.seed) for n in sizes}
    names = list(next(iter(table.values())))
    print(f"{args.runs} simulated 600-step runs of each shape per batch size, seed {args.seed} "
          f"({time.perf_counter() - started:.0f} s)")
    print("| completions a step | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for n, row in table.items():
        print(f"| {n} | " + " | ".join(row[name] if isinstance(row[name], str) else f"{row[name]:.1%}"
                                      for name in names) + " |")
    print("targets: false alarms <= 2% everywhere; caught >= 90% at 64 and above. Times of the caught dips, median "
          "(10th-90th percentile); planted: the half level crossed at step 40 going down, the bottom from ~56, "
          "the half level again at ~260 (descent ~16, recovery ~204)")
    limits = {n: entropy_limits(n, args.runs, args.seed) for n in sizes}
    names = list(next(iter(limits.values())))
    print("\nThe entropy detector near its thresholds (collapse: <= 0.2 x E0; spike: >= 2x), share of runs caught:")
    print("| completions a step | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for n, row in limits.items():
        print(f"| {n} | " + " | ".join(f"{row[name]:.1%}" for name in names) + " |")


if __name__ == "__main__":
    main()
