"""The curves a person looks at instead of reading numbers: length (with the share cut at the cap), reward, reward
per length bucket (the paper's Figure 2) and entropy, as PNG files, in steps, each with the smoothed curve its
detector judged. A curve the log lacks gets no file. matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

from bai_core.io.atomic import write_atomic
from bai_core.stability.curves import Curves
from bai_core.stability.detectors import Diagnosis
from bai_core.stability.statistics import smooth
from bai_core.stability.thresholds import steps as n_steps

PLOTS = ("length.png", "reward.png", "reward_by_length.png", "entropy.png")


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


def _save(figure, path: Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_atomic(path, buffer.getvalue())
    return path


def _plot_curve(axes, steps, values, counts, width: int, color: str) -> None:
    """The logged points, faint, and on top the curve the detector judged: the count-weighted moving average over
    `width` steps (alone when there is no smoothing)."""
    import numpy as np

    from bai_core.stability.curve import clean
    from bai_core.stability.statistics import weighted_smooth

    x, y, n = clean(steps, values, counts)
    if not len(x):
        return
    axes.plot(x, y, color=color, alpha=0.35 if width > 1 else 1.0, lw=1, marker="." if len(x) < 60 else None,
              label="as logged")
    if width > 1:
        smoothed, _ = weighted_smooth(x, y, n, width)
        axes.plot(x, np.asarray(smoothed), color=color, lw=2, label=f"judged: moving average over {n_steps(width)}")


def _title(axes, what: str, title: str) -> None:
    """The plot's subject, and the log's name on a second, smaller line (cut short, never clipped)."""
    name = title if len(title) <= 70 else "..." + title[-67:]
    axes.set_title(what + (f"\n{name}" if name else ""), fontsize=10)


def write_plots(curves: Curves, diagnosis: Diagnosis, folder: Path, title: str = "") -> list[Path]:
    """Write the PNGs of the curves the log has into `folder` (length.png, reward.png, and reward_by_length.png /
    entropy.png where the log has per-bucket rewards / entropy); returns their paths."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    counts = curves.counts()
    written = []

    collapse = diagnosis.sequence_length_collapse
    figure, axes = _axes("", "tokens")
    _title(axes, "mean response length" + (" (collapse detected)" if collapse.detected else
                                           " (the cap's doing)" if collapse.cause == "truncation" else
                                           " (pinned at the cap at the end)" if collapse.at_cap else ""), title)
    _plot_curve(axes, curves.steps, curves.length, counts, collapse.smoothing_steps or 1, "tab:blue")
    if collapse.L0:
        axes.axhline(collapse.L0, color="grey", ls=":", lw=1, label="L0")
    if collapse.below_half_at is not None:
        axes.axvline(collapse.below_half_at, color="tab:red" if collapse.detected else "grey", ls="--", lw=1,
                     label="fell below half of L0")
    if "clipped" in curves.series:
        share = axes.twinx()
        x, y, _ = _clean_pair(curves.steps, curves.series["clipped"])
        share.plot(x, y, color="tab:orange", lw=1, alpha=0.7)
        share.set_ylim(0, 1.05)
        share.set_ylabel("share cut at the cap", color="tab:orange")
    axes.legend(fontsize=8)
    written.append(_save(figure, folder / PLOTS[0]))

    hockey = diagnosis.reward_hockey_stick
    if "reward" in curves.series:
        figure, axes = _axes("", "reward")
        _title(axes, "reward" + (" (hockey stick detected)" if diagnosis.hockey_stick_detected else ""), title)
        _plot_curve(axes, curves.steps, curves.reward, counts, hockey.smoothing_steps or 1, "tab:green")
        if hockey.minimum_step is not None and hockey.detected:
            axes.axvline(hockey.minimum_step, color="tab:red", ls="--", lw=1, label="minimum")
        axes.legend(fontsize=8)
        written.append(_save(figure, folder / PLOTS[1]))

    if curves.reward_by_length:
        figure, axes = _axes("", "reward")
        _title(axes, "reward per response-length bucket (tokens)", title)
        width = diagnosis.windows.smoothing if diagnosis.windows else 1
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
        axes.legend(fontsize=7, ncol=2)
        written.append(_save(figure, folder / PLOTS[2]))

    entropy = diagnosis.entropy
    if "entropy" in curves.series:
        figure, axes = _axes("", "entropy")
        _title(axes, "policy entropy" + (f" ({' and '.join(entropy.kinds)} detected)" if entropy.detected else ""),
               title)
        _plot_curve(axes, curves.steps, curves.series["entropy"], counts, entropy.smoothing_steps or 1, "tab:purple")
        if entropy.E0:
            axes.axhline(entropy.E0, color="grey", ls=":", lw=1, label="E0")
        if entropy.spike_step is not None:
            axes.axvline(entropy.spike_step, color="tab:red", ls="--", lw=1, label="spike")
        if entropy.collapsed_at is not None:
            axes.axvline(entropy.collapsed_at, color="tab:red", ls="--", lw=1, label="collapsed")
        axes.legend(fontsize=8)
        written.append(_save(figure, folder / PLOTS[3]))
    return written


def _clean_pair(steps, values):
    from bai_core.stability.curve import clean

    return clean(steps, values)
