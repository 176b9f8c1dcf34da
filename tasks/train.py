"""Prefect tasks over `bai_core.rl.stage`: check the train inputs, then train (cached on the content key).

While training: a progress artifact, and the detectors' alarms as a warning in the run's log plus a Prefect event
(`bai.stability.collapse`, `bai.stability.hockey-stick`) carrying the verdict's evidence, for Automations to act on.
After: the verdicts and the three plots (embedded PNGs) as a markdown artifact on the run's page.
"""

from __future__ import annotations

import base64
import json

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from bai.tasks.artifacts import ProgressArtifact
from bai.tasks.stage import STAGE_TASK, finished, not_a_user_error
from bai_core import layout, progress
from bai_core.errors import BaiError
from bai_core.merge.config import MergeSettings
from bai_core.rl import stage
from bai_core.rl.config import TrainSettings
from bai_core.rl.metrics import MonitorHooks, progress_detail
from bai_core.sources import CheckpointRef
from bai_core.stability.live import DETECTOR_EVENTS
from bai_core.storage import StorageConfig, open_store


@task(name="prepare-train", retries=1, retry_condition_fn=not_a_user_error)
def prepare_train(settings: TrainSettings, refs: dict, merge: MergeSettings, storage: StorageConfig) -> dict:
    """Prompts, reward models and chat templates checked and fingerprinted, before any model is merged or trained."""
    return stage.prepare_train(settings, {role: CheckpointRef.model_validate(ref) for role, ref in refs.items()},
                               merge, storage)


def _hooks(settings: TrainSettings, key: str) -> MonitorHooks:
    bar = ProgressArtifact(f"RL ({settings.algorithm}) from {settings.init}: {settings.steps} steps")
    records: list[dict] = []

    def on_step(step: int, total: int, record: dict) -> None:
        records.append(record)
        bar("train", step, total, progress_detail(records, total))

    def on_alarm(detector: str, step: int, evidence: dict) -> None:
        progress.note(f"step {step}: {detector.replace('_', ' ')} detected: {evidence.get('reason', '')}",
                      warning=True)
        emit_event(event=DETECTOR_EVENTS[detector], payload={"step": step, "detector": detector, **evidence},
                   resource={"prefect.resource.id": f"bai.train.{key[:24]}", "prefect.resource.name": settings.init})

    return MonitorHooks(on_step=on_step, on_alarm=on_alarm)


@task(name="train", **STAGE_TASK)
def train_actor(inputs: dict, settings: TrainSettings, storage: StorageConfig):
    """RL from the init checkpoint; resumes from the store's last checkpoint of the same key."""
    train = stage.TrainStage(stage.TrainInputs.model_validate(inputs), settings, storage)
    train.hooks = _hooks(settings, train.key)  # its events name the run by the stage's key
    try:
        ref, how = stage.run_train_stage(train)  # on machine 0 (or the only one): cached, adopted or built
    finally:
        publish_verdicts(train.key, storage, settings)
    return finished(ref, how, train.damaged)


def _bucket_verdict(v: dict) -> str:
    if v["detected"]:
        return f"**detected** (confidence {v['confidence']:.3f})"
    return "not detected" if v.get("enough_samples", True) else "too sparse to judge"


def publish_verdicts(key: str, storage: StorageConfig, settings: TrainSettings) -> None:
    """The verdicts and plots of this key's run (finished or stopped by a detector) on the run's page."""
    store = open_store(storage)
    folder = layout.train_folder(key)
    try:
        verdicts = json.loads(store.get_text(f"{folder}/verdicts.json"))
    except BaiError:
        return  # the run ended before writing verdicts (an error); nothing to show
    c, h = verdicts["sequence_length_collapse"], verdicts["reward_hockey_stick"]
    # A list, not a table: the UI does not wrap table cells, and the evidence is a sentence.
    lines = [f"# RL from `{settings.init}` ({settings.algorithm}, {verdicts['steps']} of {settings.steps} steps)", "",
             f"- Sequence Length Collapse: {'**detected**' if c['detected'] else 'not detected'}. L0 {c['L0']}, "
             f"minimum {c['minimum']} at step {c['minimum_step']}, final {c['final']}: {c['reason']}.",
             f"- Reward Hockey Stick: {'**detected**' if h['detected'] else 'not detected'}. r0 {h['r0']}, "
             f"minimum {h['minimum']} at step {h['minimum_step']}, final {h['final']}: {h['reason']}."]
    lines += [f"  - length bucket {name}: {_bucket_verdict(v)} ({v['reason']})" for name, v in h["buckets"].items()]
    lines += [f"  - length bucket {name}: too sparse to judge ({why})"
              for name, why in h.get("sparse_buckets", {}).items()]
    if (e := verdicts.get("entropy")) is not None:
        said = "**detected**" if e["detected"] else "not detected" if e["judged"] else "cannot judge"
        lines.append(f"- Entropy: {said}. E0 {e['E0']}, minimum {e['minimum']} at step {e['minimum_step']}, final "
                     f"{e['final']}: {e['reason']}.")
    lines.append("")
    for name in ("length.png", "reward.png", "reward_by_length.png", "entropy.png"):
        try:
            png = store.get_bytes(f"{folder}/plots/{name}")
        except BaiError:
            continue
        lines += [f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})", ""]
    try:
        trl_settings = json.loads(store.get_text(f"{folder}/{stage.TRL_SETTINGS_FILE}"))
    except BaiError:
        trl_settings = {}
    if trl_settings:
        lines += ["TRL's settings in effect: " + ", ".join(f"`{k}` {v}" for k, v in trl_settings.items()), ""]
    lines.append(f"Metrics, verdicts and plots: `{store.uri(folder)}`")
    create_markdown_artifact("\n".join(lines), key=f"train-{key[:12]}",
                             description=f"RL stability: verdicts and curves ({settings.init})")
