"""The curves a person looks at instead of reading numbers: length, reward, and reward per length bucket (the
paper's Figure 2), as PNG files. matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

from bai_core.io.atomic import write_atomic
from bai_core.stability.curves import Curves
from bai_core.stability.detectors import Diagnosis
from bai_core.stability.statistics import smooth

PLOTS = ("length.png", "reward.png", "reward_by_length.png")


def _axes(title: str, ylabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.6), dpi=100)
    axes.set_title(title, fontsize=11)
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def _points(steps, values):
    pairs = [(s, v) for s, v in zip(steps, values) if v is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


def _runs(steps, values) -> list[list[tuple]]:
    """The (step, value) pairs in runs of consecutive steps that have a value: a bucket's curve is drawn per run,
    so a line never bridges steps where the bucket had no completions."""
    runs: list[list[tuple]] = [[]]
    for step, value in zip(steps, values):
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((step, value))
    return [run for run in runs if run]


def _save(figure, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def _plot_curve(axes, steps, values, width: int, color: str) -> None:
    """The per-step values, faint, and their moving average on top (alone when there is no smoothing)."""
    import numpy as np

    steps, values = _points(steps, values)
    if not values:
        return
    axes.plot(steps, values, color=color, alpha=0.35 if width > 1 else 1.0, lw=1, label="per step")
    if width > 1:
        axes.plot(steps, smooth(np.asarray(values), width), color=color, lw=2, label=f"moving average ({width})")


def write_plots(curves: Curves, diagnosis: Diagnosis, folder: Path, title: str = "") -> list[Path]:
    """Write the three PNGs into `folder`; returns their paths."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    width = diagnosis.windows.smoothing if diagnosis.windows else 1
    prefix = f"{title}: " if title else ""

    collapse = diagnosis.sequence_length_collapse
    figure, axes = _axes(prefix + "mean response length" + (" (collapse detected)" if collapse.detected else ""),
                         "tokens")
    _plot_curve(axes, curves.steps, curves.length, width, "tab:blue")
    if collapse.L0:
        axes.axhline(collapse.L0, color="grey", ls=":", lw=1, label="L0")
    if collapse.collapsed_at is not None:
        axes.axvline(collapse.collapsed_at, color="tab:red", ls="--", lw=1, label="fell below half of L0")
    axes.legend(fontsize=8)
    _save(figure, folder / PLOTS[0])

    hockey = diagnosis.reward_hockey_stick
    figure, axes = _axes(prefix + "reward" + (" (hockey stick detected)" if diagnosis.hockey_stick_detected else ""),
                         "reward")
    _plot_curve(axes, curves.steps, curves.reward, width, "tab:green")
    if hockey.minimum_step is not None and hockey.detected:
        axes.axvline(hockey.minimum_step, color="tab:red", ls="--", lw=1, label="minimum")
    axes.legend(fontsize=8)
    _save(figure, folder / PLOTS[1])

    figure, axes = _axes(prefix + "reward per response-length bucket (tokens)", "reward")
    for index, name in enumerate(sorted(curves.reward_by_length, key=lambda n: float(n.split("-")[0]))):
        fired = diagnosis.reward_hockey_stick_by_length.get(name)
        label = name + (" (hockey stick)" if fired and fired.detected else "")
        color = f"C{index % 10}"
        steps, values = _points(curves.steps, curves.reward_by_length[name])
        axes.plot(steps, values, ls="none", marker="o", ms=2.5, alpha=0.5, color=color,  # every step it had any
                  label=label)
        for run in _runs(curves.steps, curves.reward_by_length[name]):  # the average, broken where it had none
            if len(run) >= 2:
                run_steps, run_values = zip(*run)
                axes.plot(run_steps, smooth(np.asarray(run_values), min(width, len(run))), color=color,
                          lw=2.5 if fired and fired.detected else 1.2)
    if curves.reward_by_length:
        axes.legend(fontsize=7, ncol=2)
    else:
        axes.text(0.5, 0.5, "this log has no per-length rewards", ha="center", transform=axes.transAxes)
    _save(figure, folder / PLOTS[2])
    return [folder / name for name in PLOTS]
