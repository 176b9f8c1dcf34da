"""Tables and plots across pipeline runs: the paradigm comparison (the paper's Table 1 beside its Figures 2-3) and
the scored alpha sweep (Table 2). Built from the runs' summaries and what they published in the store; pure."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from bai_core.io.tables import csv_text, markdown
from bai_core.stability.curves import Curves
from bai_core.stability.logs import read_log
from bai_core.storage import ArtifactStore


def _key(store: ArtifactStore, uri: str) -> str:
    return uri.removeprefix(store.url + "/")


def run_row(summary: dict, scored: str, store: ArtifactStore, before: str | None = None) -> dict:
    """A run as a row: each task's primary score, the overall, the scored answers' length and finished share (when
    it was scored), and the overall of `before` (the RL run's starting point) when that was scored too; for an RL
    run, the detectors' verdicts and the final (smoothed) mean response length."""
    outputs = summary["outputs"]
    row = {}
    if scored in outputs.get("scores", {}):
        scores = outputs["scores"][scored]
        row = {row["task"]: row["score"] for row in scores["rows"]}
        row["overall"] = scores["overall"]
        if before is not None and before in outputs["scores"]:
            row["overall before RL"] = outputs["scores"][before]["overall"]
        row.update({"answer tokens": scores["mean_answer_tokens"], "finished": scores["finished_share"]})
    if "verdicts" in outputs:
        verdicts = json.loads(store.get_text(_key(store, outputs["verdicts"])))
        collapse, hockey = verdicts["sequence_length_collapse"], verdicts["reward_hockey_stick"]
        row.update({"length collapse": "detected" if collapse["detected"] else "no",
                    "hockey stick": "detected" if hockey["detected"] else "no",
                    "RL steps": verdicts["steps"], "final RL length": collapse["final"]})
    else:
        row.update({"length collapse": None, "hockey stick": None, "RL steps": 0, "final RL length": None})
    return row


def curves_of(summary: dict, store: ArtifactStore) -> Curves | None:
    """The RL run's per-step curves (None for a run without RL)."""
    if "metrics" not in summary["outputs"]:
        return None
    text = store.get_text(_key(store, summary["outputs"]["metrics"]))
    with tempfile.TemporaryDirectory(prefix="bai-curves-") as scratch:
        path = Path(scratch) / "metrics.jsonl"
        path.write_text(text)
        return read_log(path)


def write_report(store: ArtifactStore, folder: str, rows: list[dict], names: list[str], png: bytes, title: str,
                 note: str = "") -> dict:
    """The table as CSV and markdown and its plot as PNG under `folder` in the store; their URIs."""
    return {"csv": store.put_text(f"{folder}/table.csv", csv_text(rows, names)),
            "markdown": store.put_text(f"{folder}/table.md", f"# {title}\n\n{markdown(rows, names)}\n{note}\n"),
            "plot": store.put_bytes(f"{folder}/plot.png", png)}


def recommend(rows: list[dict], objective: str = "overall") -> dict | None:
    """The best `objective` among the rows whose RL showed no length collapse (rows without RL all qualify)."""
    stable = [row for row in rows if row.get("length collapse") != "detected" and row.get(objective) is not None]
    return max(stable, key=lambda row: row[objective], default=None)


def _figure(panels: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, panels, figsize=(6 * panels, 3.8), dpi=100)


def _save(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def comparison_plot(curves: dict[str, Curves], title: str) -> bytes:
    """Mean response length and mean reward per step of every RL run, overlaid (Figures 2-3 side by side):
    a 10-step moving average over the faint per-step values."""
    import numpy as np

    from bai_core.stability.statistics import smooth

    figure, (length_axes, reward_axes) = _figure(2)
    for axes, label in ((length_axes, "mean response length (tokens)"), (reward_axes, "mean reward")):
        axes.set_xlabel("step")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
    for index, (name, run) in enumerate(curves.items()):
        color = f"C{index}"
        for axes, series in ((length_axes, run.length), (reward_axes, run.reward)):
            points = [(s, v) for s, v in zip(run.steps, series) if v is not None]
            if not points:
                continue
            steps, values = zip(*points)
            axes.plot(steps, values, color=color, alpha=0.2, lw=1)
            axes.plot(steps, smooth(np.asarray(values), min(10, len(values))), color=color, lw=2, label=name)
    length_axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=11)
    return _save(figure)


def sweep_plot(rows: list[dict], objective: str | None, title: str) -> bytes:
    """Score against alpha (when scored), and stability: the final RL length (pilots) or the answers' length (no
    RL), with a red cross where a length collapse was detected."""
    figure, (score_axes, length_axes) = _figure(2)
    alphas = [row["alpha"] for row in rows]
    if objective is not None:
        score_axes.plot(alphas, [row[objective] for row in rows], "o-", color="C0",
                        label="after the RL pilot" if any(row["RL steps"] for row in rows) else "M_bai")
        if objective == "overall" and all("overall before RL" in row for row in rows):
            score_axes.plot(alphas, [row["overall before RL"] for row in rows], "o--", color="C0", alpha=0.5,
                            label="M_bai, before RL")
        score_axes.set_ylabel(objective)
        score_axes.legend(fontsize=8)
    pilots = any(row["RL steps"] for row in rows)
    length = "final RL length" if pilots else "answer tokens"
    measured = [row for row in rows if row.get(length) is not None]
    length_axes.plot([row["alpha"] for row in measured], [row[length] for row in measured], "o-", color="C1")
    collapsed = [row for row in measured if row["length collapse"] == "detected"]
    if collapsed:
        length_axes.plot([r["alpha"] for r in collapsed], [r[length] for r in collapsed], "x", color="red", ms=12,
                         mew=3, label="length collapse detected")
        length_axes.legend(fontsize=8)
    length_axes.set_ylabel("final mean response length (RL pilot)" if pilots else "mean answer length (tokens)")
    for axes in (score_axes, length_axes):
        axes.set_xlabel("alpha (pretrained weight in stage 2)")
        axes.grid(alpha=0.3)
    figure.suptitle(title, fontsize=11)
    return _save(figure)


def tune_plot(trials: list[dict], best: dict, start: dict, title: str) -> bytes:
    """The study: its trials in the (w, alpha) plane, coloured by their merge's dev value before RL, the pick
    starred, trial 0 (the config's own weights) ringed and, with pilots, the pruned trials crossed; and the history:
    each trial's value (at the last rung it reached; pruned ones grey) with the best so far among the finished."""
    figure, (plane, history) = _figure(2)
    merged = [t.get("merge_value", t["value"]) for t in trials]
    shown = plane.scatter([t["w"] for t in trials], [t["alpha"] for t in trials], c=merged, cmap="viridis", s=40)
    figure.colorbar(shown, ax=plane, label="merge's value on the dev split (before RL)")
    pruned = [t for t in trials if t.get("pruned_at") is not None]
    if pruned:
        plane.plot([t["w"] for t in pruned], [t["alpha"] for t in pruned], "x", color="grey", ms=9,
                   label="pruned (RL pilots)")
    plane.plot([best["w"]], [best["alpha"]], "*", color="red", ms=16, label="pick")
    plane.plot([start["w"]], [start["alpha"]], "o", mfc="none", mec="black", ms=12, label="trial 0 (config)")
    plane.set_xlim(-0.03, 1.03)
    plane.set_ylim(-0.03, 1.03)
    plane.set_xlabel("w (instruct weight in stage 1)")
    plane.set_ylabel("alpha (pretrained weight in stage 2)")
    plane.legend(fontsize=8)
    finished = [t for t in trials if t.get("pruned_at") is None]
    history.plot([t["trial"] for t in finished], [t["value"] for t in finished], "o", color="C0",
                 label="trial" if not pruned else "trial (every rung)")
    if pruned:
        history.plot([t["trial"] for t in pruned], [t["value"] for t in pruned], "x", color="grey",
                     label="pruned (value at its last rung)")
    running, best_so_far = None, []
    for t in finished:
        running = t["value"] if running is None else max(running, t["value"])
        best_so_far.append(running)
    history.step([t["trial"] for t in finished], best_so_far, "-", where="post", color="C3", label="best so far")
    history.set_xlabel("trial")
    history.set_ylabel("value on the dev split")
    history.legend(fontsize=8)
    for axes in (plane, history):
        axes.grid(alpha=0.3)
    figure.suptitle(title, fontsize=11)
    return _save(figure)
