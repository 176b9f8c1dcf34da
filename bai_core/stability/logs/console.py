"""What an RL run prints, as a user saves it (nohup.out, a Slurm log, wandb's files/output.log):

- TRL: each logging step prints the metrics as a Python dict (`{'loss': 0.0, 'completions/mean_length': 312.5,
  'reward': 0.6, ...}`) after the progress bar; the dict has no step, so a point's step and the run's planned
  length come from the last progress bar before it (`  5/500 [00:30<...`). Without a bar, points are numbered.
- verl: `step:12 - actor/entropy:0.53 - critic/score/mean:0.41 - response_length/mean:612.3 - ...`, often behind
  a Ray prefix (`(TaskRunner pid=1234)`), in ANSI colours, with values like `np.float64(0.5)`. The plan is in
  `Total training steps: N` or the printed config's `total_training_steps`; the completions a step in that config
  (`data.train_batch_size` prompts x `actor_rollout_ref.rollout.n` samples each).
- OpenRLHF (and other tools) printing a metric dict per step on a line that names the step
  (`(PPOTrainer pid=1) INFO ... ppo_trainer.py:1096] Global step 12: {'reward': 0.5, 'response_length': ...}`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bai_core.stability.curves import Curves, has_curve_metric, number

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RAY_PREFIX = re.compile(r"^\s*\((?:[\w.]+ )?pid=\d+(?:, ip=[\d.]+)?\)\s?", re.MULTILINE)
VERL_STEP = re.compile(r"(?:^|[\s>])step:(\d+) - (.*)$", re.MULTILINE)
METRIC_DICT = re.compile(r"\{'[^{}]*\}")
PROGRESS = re.compile(r"(\d+)/(\d+) \[")  # tqdm: " 12/500 [00:30<...]"
STEP_LABEL = re.compile(r"\bstep\s*(\d+)\s*:?\s*$", re.IGNORECASE)  # "... Global step 12: {...}" (OpenRLHF)
NUMPY_SCALAR = re.compile(r"\b(?:np|numpy)\.\w+\(([^()]*)\)")
TORCH_SCALAR = re.compile(r"\btensor\(([^(),]*)(?:, [^()]*)?\)")
NON_FINITE = re.compile(r"(?<!['\w])-?(?:nan|inf)\b")
TOTAL_STEPS = re.compile(r"(?:Total training steps|total_training_steps)\W{1,4}(\d+)")


def clean(text: str) -> str:
    """Without colours, carriage returns (tqdm redraws) or Ray's per-line process prefix."""
    return RAY_PREFIX.sub("", ANSI.sub("", text).replace("\r", "\n"))


def recognises(text: str) -> bool:
    text = clean(text)
    return bool(VERL_STEP.search(text)) or any(_parse_dict(m.group(0)) for m in METRIC_DICT.finditer(text))


def read(path: Path, text: str) -> Curves:
    text = clean(text)
    if VERL_STEP.search(text):
        curves = Curves("verl-console")
        for match in VERL_STEP.finditer(text):
            record = {"step": int(match.group(1))}
            for part in match.group(2).split(" - "):
                key, sep, value = part.partition(":")
                if sep:
                    record[key.strip()] = _value(value.strip())
            curves.add(record)
        _verl_config(text, curves)
    else:
        curves = _printed_dicts(text)
    if (total := TOTAL_STEPS.findall(text)) and curves.format.startswith("verl"):
        curves.planned_steps = int(total[-1])
    return curves


def _printed_dicts(text: str) -> Curves:
    """Printed metric dicts. A dict whose line names its step ("Global step 12: {...}", OpenRLHF) is at that step.
    TRL's are not: each is at the step of the progress bar drawn just before it. Python buffers stdout and not
    stderr, so the dicts can come in bursts after many bar updates: then the bars say nothing of a dict's own step,
    and the dicts are spread evenly over the bar's last count (40 dicts and a bar at 200/200: every 5 steps)."""
    curves = Curves("trl-console")
    records, position = [], 0
    for match in METRIC_DICT.finditer(text):
        bars = list(PROGRESS.finditer(text, position, match.start()))
        position = match.end()
        record = _parse_dict(match.group(0))
        if record and has_curve_metric(record):
            line_start = text.rfind("\n", 0, match.start()) + 1
            if (label := STEP_LABEL.search(text, line_start, match.start())) and "step" not in record:
                record["step"] = int(label.group(1))
            records.append((record, int(bars[-1].group(1)) if bars else None))
    if records and all("step" in record or "global_step" in record for record, _ in records):
        curves.format = "console"  # the steps are in the log: no progress bar needed
        for record, _ in records:
            curves.add(record)
        return curves
    bars = list(PROGRESS.finditer(text))
    final = (int(bars[-1].group(1)), int(bars[-1].group(2))) if bars else None
    if final:
        curves.planned_steps = final[1]
    at_bars = [bar for _, bar in records]
    fresh = all(bar is not None for bar in at_bars) and all(b > a for a, b in zip(at_bars, at_bars[1:]))
    interval = final[0] // len(records) if final and records and final[0] % len(records) == 0 else None
    if not fresh and interval is None:
        curves.format = "console (steps unknown: points numbered 1, 2, ...)"
    for index, (record, bar) in enumerate(records, 1):
        if "step" not in record and "global_step" not in record:
            record["step"] = bar if fresh else index * interval if interval else index
        curves.add(record)
    return curves


def _value(text: str):
    text = NUMPY_SCALAR.sub(r"\1", text)
    try:
        return float(text)
    except ValueError:
        return None


def _parse_dict(text: str) -> dict | None:
    """A printed dict of metrics, or None if it is something else."""
    source = NON_FINITE.sub("None", TORCH_SCALAR.sub(r"\1", NUMPY_SCALAR.sub(r"\1", text)))
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, dict) or not any(number(v) is not None for v in value.values()):
        return None
    return value  # TRL 1.x prints values as strings of 4 significant digits ('9.75e-05'): Curves reads both


def _verl_config(text: str, curves: Curves) -> None:
    """The completions a step from the config verl prints at the start (a dict, pretty-printed over lines)."""
    start = text.find("{'actor_rollout_ref'")
    if start < 0:
        return
    depth, end = 0, None
    for index in range(start, min(len(text), start + 200_000)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            end = index + 1
            break
    if end is None:
        return
    try:
        config = ast.literal_eval(NON_FINITE.sub("None", text[start:end]))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return
    try:
        prompts = int(config["data"]["train_batch_size"])
        samples = int(config["actor_rollout_ref"]["rollout"].get("n", 1))
    except (KeyError, TypeError, ValueError, AttributeError):
        return
    curves.completions_per_step = prompts * samples
    curves.completions_source = f"the printed config: data.train_batch_size {prompts} x rollout.n {samples}"
    if (total := config.get("trainer", {}).get("total_training_steps")) and not curves.planned_steps:
        curves.planned_steps = int(total)


def what_is_in(text: str) -> str:
    """A few words on a file no reader took: what it is, as far as can be told."""
    lines = [line for line in clean(text).splitlines() if line.strip()]
    if not lines:
        return "it is empty"
    first = lines[0].strip()
    shown = first if len(first) <= 60 else first[:57] + "..."
    if first.startswith("{"):
        return f"{len(lines)} lines of JSON with no log_history and not one object per line (first: {shown!r})"
    if "," in first:
        return f"a table whose header has no step column ({shown!r})"
    return (f"{len(lines)} lines of text with no metric records (no printed metric dicts, no `step:N - key:value` "
            f"lines; first line: {shown!r})")
