"""`bai diagnose` on logs of other RL stacks: a wandb CSV export, verl's JSONL file logger; exit codes and errors.
(A TRL trainer_state.json of a real run and bai's own metrics.jsonl are diagnosed in test_train.py.)"""

import csv
import json

import numpy as np
import pytest

from bai.cli import main

STEPS = np.arange(600)
RNG = np.random.default_rng(7)
COLLAPSING = np.interp(STEPS, [0, 15, 30, 600], [930, 930, 260, 280]) + RNG.normal(0, 25, 600)
REWARD = 0.6 + 0.1 * STEPS / 600 + RNG.normal(0, 0.03, 600)


def write_csv(path, lengths, rewards):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Step", "grpo-run - response_length/mean", "grpo-run - critic/score/mean"])
        writer.writerows(zip(STEPS, lengths, rewards))
    return path


def test_wandb_csv_export_with_collapse(tmp_path, capsys):
    log = write_csv(tmp_path / "export.csv", COLLAPSING, REWARD)
    assert main(["diagnose", str(log), "--json"]) == 0  # without --fail-on a verdict is not an error
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "csv" and result["points"] == 600
    collapse = result["sequence_length_collapse"]
    assert collapse["detected"] is True and 15 <= collapse["collapsed_at"] <= 30 and collapse["recovered"] is False
    assert result["reward_hockey_stick"]["detected"] is False
    assert main(["diagnose", str(log), "--fail-on", "collapse,hockey-stick"]) == 3
    assert main(["diagnose", str(log), "--fail-on", "hockey-stick"]) == 0
    assert "Sequence Length Collapse: DETECTED" in capsys.readouterr().out


def test_verl_file_logger_jsonl(tmp_path, capsys):
    log = tmp_path / "verl.jsonl"
    log.write_text("".join(json.dumps({"step": int(s), "data": {"response_length/mean": 400 + s / 3,
                                                                  "critic/score/mean": float(r)}}) + "\n"
                           for s, r in zip(STEPS, REWARD)))
    assert main(["diagnose", str(log), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "verl" and result["points"] == 600
    assert not result["sequence_length_collapse"]["detected"]
    assert result["sequence_length_collapse"]["trend_per_100_steps"] > 0


@pytest.mark.parametrize("content,error", [
    (None, "no such file"),
    ("just some text\n", "not a log this reads"),
    ('{"step": 1, "loss": 0.3}\n', "no training steps that have a response length, reward or entropy"),
    ('{"log_history": [\n', "not valid JSON"),
])
def test_unreadable_logs_are_one_line_naming_the_file(tmp_path, capsys, content, error):
    log = tmp_path / "log.json"
    if content is not None:
        log.write_text(content)
    assert main(["diagnose", str(log)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bai: error: {log}") and error in err and "\n" not in err


def test_unknown_detector_name_is_refused(tmp_path, capsys):
    log = write_csv(tmp_path / "export.csv", COLLAPSING, REWARD)
    assert main(["diagnose", str(log), "--fail-on", "colapse"]) == 1
    assert "unknown detector" in capsys.readouterr().err


def test_the_bucket_plot_marks_every_point_and_never_bridges_a_gap(tmp_path, monkeypatch):
    """A bucket with completions at steps 1-9 and 71-120 only: its average is drawn as two lines, and its points as
    markers (a step alone between gaps is a marker, no line)."""
    import matplotlib.pyplot as plt

    from bai_core.stability.curves import Curves
    from bai_core.stability.plots import write_plots

    curves = Curves("bai-metrics")
    for step in range(1, 121):
        record = {"step": step, "length/mean": 20.0, "reward/mean": 0.5, "reward_by_length/0-16": 0.5}
        if step < 10 or step > 70:
            record["reward_by_length/16-32"] = 1.0
        if step == 40:
            record["reward_by_length/32-48"] = 2.0
        curves.add(record)
    drawn = []
    monkeypatch.setattr(plt, "close", lambda figure: drawn.append(figure))  # keep the figures to inspect them
    write_plots(curves, curves.diagnose(planned_steps=120), tmp_path)
    axes = drawn[-1].axes[0]  # reward per length bucket
    lines = [(list(line.get_xdata()), line.get_linestyle()) for line in axes.get_lines()]
    runs = [x for x, style in lines if style != "None"]
    marks = [x for x, style in lines if style == "None"]
    # lines: 0-16 over the whole run, 16-32 in two pieces, none for 32-48; each spans consecutive steps only
    assert sorted(runs, key=len) == [list(range(1, 10)), list(range(71, 121)), list(range(1, 121))]
    assert [40] in marks and list(range(1, 10)) + list(range(71, 121)) in marks
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["0-16", "16-32", "32-48"]


def test_progress_lines_every_ten_percent_after_a_quiet_start_with_their_detail():
    from bai_core.progress import Lines

    now = [0.0]
    written = []
    lines = Lines(lambda text, warning: written.append((text, warning)), clock=lambda: now[0])
    lines.stage("train", "started", None)
    for step in range(1, 101):
        now[0] = step * 0.2  # 20 s in all: quiet for the first 5 s
        lines.progress("train", step, 100, f"step {step}/100")
    lines.note("Reward Hockey Stick: DETECTED", warning=True)
    lines.stage("train", "Completed", 20.0, "100 steps, stable")
    texts = [text for text, _ in written]
    assert texts[0] == "train started" and texts[-1] == "train Completed (20.0 s): 100 steps, stable"
    assert texts[1:-2] == [f"  RL training {p}%: step {max(p, 26)}/100" for p in range(20, 101, 10)]
    assert written[-2] == ("  Reward Hockey Stick: DETECTED", True)


def test_the_uris_bai_prints_are_taken_back(tmp_path, capsys, s3_service, s3_prefix):
    """`bai run` prints `metrics: file:///.../metrics.jsonl` (or s3://...): pasted back into `bai diagnose`, each
    reads the same log as its local path; a missing S3 object is one line naming it."""
    from bai_core.storage import ArtifactStore

    log = write_csv(tmp_path / "my run.csv", COLLAPSING, REWARD)  # a space: the file:// URI quotes it
    store = ArtifactStore(s3_prefix)
    uri = store.put_bytes("runs/export.csv", log.read_bytes())
    verdicts = []
    for argument in (str(log), log.as_uri(), uri):
        assert main(["diagnose", argument, "--json"]) == 0, argument
        result = json.loads(capsys.readouterr().out)
        verdicts.append((result["points"], result["sequence_length_collapse"]))
    assert verdicts[0] == verdicts[1] == verdicts[2] and verdicts[0][0] == 600
    assert main(["diagnose", f"{s3_prefix}/runs/nothing.csv"]) == 1
    assert capsys.readouterr().err.strip() == f"bai: error: {s3_prefix}/runs/nothing.csv: no such S3 object"
    assert main(["diagnose", log.as_uri(), "--plot", "s3://bai-tests/plots"]) == 1
    assert capsys.readouterr().err.strip().startswith("bai: error: --plot s3://bai-tests/plots: give a local folder")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("records,why", [
    ([{"step": 1, "completions/mean_length": 300.0, "reward": 0.5}], "too few points (1 < 3)"),
    ([{"step": s, "reward": 0.5 + s / 100} for s in range(1, 60)], "no response length in this log"),
])
def test_a_log_that_cannot_be_judged_gives_its_own_exit_code(tmp_path, capsys, records, why):
    """One point, or no length logged: --fail-on collapse exits 4 (cannot judge), with the reason; never 0."""
    log = write_jsonl(tmp_path / "log.jsonl", records)
    assert main(["diagnose", str(log), "--fail-on", "collapse"]) == 4
    out = capsys.readouterr().out
    assert "Sequence Length Collapse: cannot judge" in out and f"cannot judge collapse: {why}" in out
    assert main(["diagnose", str(log), "--json", "--fail-on", "collapse"]) == 4
    assert json.loads(capsys.readouterr().out)["cannot_judge"]["collapse"] == why
    assert main(["diagnose", str(log)]) == 0  # not asked to gate on it: a verdict, not an error


def test_a_collapse_inside_the_first_points_of_a_long_planned_run(tmp_path, capsys):
    """A run planned for 10,000 steps that collapsed by 95% in its first few logged points and stopped at 40: the
    baseline is from before the fall, the early window is the plan's (300 steps), and the verdict agrees with its
    evidence: collapsed, not recovered by the end of the log."""
    rng = np.random.default_rng(3)
    lengths = [900.0, 880.0, 300.0, 90.0] + list(45 + rng.normal(0, 3, 36))
    log = write_jsonl(tmp_path / "log.jsonl", [{"step": s + 1, "max_steps": 10_000, "completions/mean_length": v,
                                                "reward": 0.3} for s, v in enumerate(lengths)])
    assert main(["diagnose", str(log), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    collapse = result["sequence_length_collapse"]
    assert result["windows"]["early"] == 300 and result["planned_steps"] == 10_000
    assert collapse["detected"] and collapse["L0"] > 850 and collapse["below_half_at"] == collapse["collapsed_at"] == 3
    assert collapse["recovered"] is False and "by the end of the log (step 40)" in collapse["reason"]


def test_truncation_is_told_apart_from_collapse(tmp_path, capsys):
    """The mean length halves because completions stop hitting the 512 cap while the finished ones keep their
    length (TRL's terminated length): truncation, not collapse. Without the terminated length, the clipped share
    falling from 90% says the same; with both falling, it is a collapse."""
    steps = range(1, 201)
    clipped = [0.9 if s < 15 else 0.05 for s in steps]
    finished = [200.0] * 200
    mean = [c * 512 + (1 - c) * f for c, f in zip(clipped, finished)]
    records = [{"step": s, "completions/mean_length": m, "completions/clipped_ratio": c,
                "completions/mean_terminated_length": f, "reward": 0.5}
               for s, m, c, f in zip(steps, mean, clipped, finished)]
    for drop_terminated in (False, True):
        log = write_jsonl(tmp_path / "log.jsonl", [{k: v for k, v in r.items() if not drop_terminated or
                                                    k != "completions/mean_terminated_length"} for r in records])
        assert main(["diagnose", str(log), "--json", "--steps", "200"]) == 0
        collapse = json.loads(capsys.readouterr().out)["sequence_length_collapse"]
        assert not collapse["detected"] and collapse["cause"] == "truncation", collapse
        assert collapse["reason"].startswith("truncation, not collapse")
    shrinking = [dict(r, **{"completions/mean_terminated_length": 200.0 if r["step"] < 15 else 40.0,
                            "completions/mean_length": r["completions/mean_length"] * (1 if r["step"] < 15 else 0.2)})
                 for r in records]
    assert main(["diagnose", str(write_jsonl(tmp_path / "log.jsonl", shrinking)), "--json", "--steps", "200"]) == 0
    collapse = json.loads(capsys.readouterr().out)["sequence_length_collapse"]
    assert collapse["detected"] and collapse["cause"] == "collapse"


def test_tensorboard_event_files_are_read_with_tensorboards_reader(tmp_path, capsys):
    """An event file as TRL's TensorBoard integration writes it (`train/<metric>` scalars), written by torch's
    SummaryWriter and read back through the tensorboard package: recognised by content, whatever its name."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "runs"))
    for step, length in enumerate(COLLAPSING[:300], 1):
        writer.add_scalar("train/completions/mean_length", float(length), step)
        writer.add_scalar("train/reward", float(REWARD[step - 1]), step)
    writer.close()
    folder = tmp_path / "runs"
    event_file = next(folder.iterdir())
    for target in (folder, event_file):
        assert main(["diagnose", str(target), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["format"] == "tensorboard" and result["points"] == 300
        assert result["sequence_length_collapse"]["detected"]


def test_consoles_as_printed_are_read(tmp_path, capsys):
    """verl's console behind Ray's prefix, in colour, with numpy scalars; TRL's dicts after progress bars."""
    verl = "".join(f"\x1b[36m(TaskRunner pid=42)\x1b[0m step:{s} - actor/entropy:np.float64({0.5 - s / 2000}) - "
                   f"critic/score/mean:{float(REWARD[s])} - response_length/mean:np.float64({float(COLLAPSING[s])})"
                   f"\n" for s in range(1, 200))
    trl = "".join(f"\r {s}/400 [00:0{s % 10}<00:10, 1.0it/s]{{'loss': 0.0, 'completions/mean_length': "
                  f"'{COLLAPSING[s]:.4g}', 'reward': {REWARD[s]}, 'epoch': 0.01}}\n" for s in range(1, 200))
    for name, text, fmt in (("verl.out", verl, "verl-console"), ("trl.log", trl, "trl-console")):
        log = tmp_path / name
        log.write_text(text)
        assert main(["diagnose", str(log), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert (result["format"], result["points"], result["first_step"]) == (fmt, 199, 1), name
        assert result["sequence_length_collapse"]["detected"], name


def test_a_wandb_history_dump_is_read_at_the_trainers_steps(tmp_path, capsys):
    """wandb's history as OpenRLHF logs it (`train/<metric>`, `train/global_step`), where wandb's own `_step` counts
    log calls (here two a step: a sample table, then the metrics): the trainer's step is the step."""
    records = []
    for step in range(1, 121):
        records.append({"_step": 2 * step - 1, "train/generated_samples": {"_type": "table-file"}})
        records.append({"_step": 2 * step, "train/global_step": step, "train/reward": float(REWARD[step]),
                        "train/response_length": float(COLLAPSING[step]), "train/policy_entropy": 0.4})
    log = write_jsonl(tmp_path / "wandb-history.jsonl", records)
    assert main(["diagnose", str(log), "--json", "--steps", "600"]) == 0  # 120 steps logged of 600 planned
    result = json.loads(capsys.readouterr().out)
    assert (result["format"], result["points"], result["first_step"], result["last_step"]) == (
        "wandb-history", 120, 1, 120)
    assert result["sequence_length_collapse"]["detected"] and result["entropy"]["judged"]
