"""The train stage (no Prefect), an `ArtifactStage` like the merges:

- `prepare_train`: everything checkable before any model is trained (prompts, reward models, chat templates),
  resolved to fingerprints. Bad input fails here with one line, before the merges run.
- `TrainStage`: its key hashes the init, reward and prompts fingerprints, the settings, TRL's version and bai's
  training code. Its build resumes from the key's last checkpoint in the store, or trains from the start,
  checkpointing to the store as it goes; then it publishes the actor, metrics.jsonl, verdicts.json and the plots
  under train/<key>/.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from pydantic import BaseModel

import bai_core
from bai_core import layout, progress
from bai_core.artifact_stage import ArtifactStage, How, run_stage
from bai_core.context import context_warning
from bai_core.errors import BaiError
from bai_core.fingerprint import cache_dir, code_version, fingerprint_folder
from bai_core.io.atomic import AtomicFolder
from bai_core.io.checkpoint import has_chat_template
from bai_core.merge.config import MergeSettings, carried_role
from bai_core.rl.actor import publish_as_sibling
from bai_core.rl.config import INIT_ROLES, TrainSettings
from bai_core.rl.generation import check_generation
from bai_core.rl.metrics import MetricsLog, MonitorHooks
from bai_core.rl.prompts import load_prompts
from bai_core.rl.rewards import check_answers, check_reward_model, verifier_code
from bai_core.rl.run_store import find_checkpoint, publish_checkpoint, refuse_if_aborted
from bai_core.sources import CheckpointRef, fetch, local_model, resolvable_uri
from bai_core.stability.plots import write_plots
from bai_core.storage import ArtifactStore, StorageConfig, open_store

MANIFEST_FILE = "bai_train.json"
TRL_SETTINGS_FILE = "trl_settings.json"  # TRL's arguments as they were in effect (trainer.IN_EFFECT)
# Source files whose code decides what training produces: editing them makes cached results stale.
TRAINING_CODE = ("trainer.py", "rewards.py", "monitor.py", "prompts.py", "launch/worker.py", "actor.py",
                 "../completion.py",
                 # the live detectors decide where `abort_on` stops a run
                 *(f"../stability/{name}.py" for name in ("detectors", "length", "reward", "entropy", "curve",
                                                         "statistics", "thresholds", "curves", "live")))


class ActorInit(BaseModel):
    """Where the actor starts: a fetched checkpoint, or a merge artifact of this run (M_bai, M_sft)."""

    name: str  # bai, sft, pretrained, instruct, reasoning, or the source itself
    source: str  # the source, or the merge artifact's URI
    fingerprint: str
    merge_key: str | None = None  # for a merge artifact: its stage ("bai" / "sft") and key, to materialize it
    merge_stage: str | None = None


class TrainInputs(BaseModel):
    """The train stage's inputs, resolved to fingerprints (JSON-able: a Prefect task parameter)."""

    init: ActorInit
    rewards: list[dict]  # per component: name, weight, and source + fingerprint or verifiable
    prompts: dict  # source, fingerprint, rows, conversational


class TrainRef(BaseModel):
    key: str
    uri: str  # train/<key>/ in the store
    actor: str | None  # the published actor checkpoint (None when a detector aborted the run)
    fingerprint: str | None
    metrics: str
    verdicts: str
    plots: list[str]
    steps: int
    fired: list[str]
    device: str = "cpu"
    seconds: float = 0.0


def training_code_version() -> str:
    return code_version(Path(__file__).parent, TRAINING_CODE)


def prepare_train(settings: TrainSettings, refs: dict[str, CheckpointRef], merge: MergeSettings,
                  storage: StorageConfig) -> dict:
    """Check and fingerprint the train stage's inputs; the actor's init stays open when it is a merge of this run.
    Returns {"init": ActorInit | None, "rewards": [...], "prompts": {...}} as JSON."""
    store = open_store(storage)
    check_generation(settings.generation)
    if settings.launch.distributed:  # a missing rank-0 address or DeepSpeed is said now, before the merges
        from bai_core.rl.launch.config import check_launch
        from bai_core.rl.trainer import device

        check_launch(settings.launch, on_gpu=device() == "cuda")
    prompts = load_prompts(settings.prompts, storage)
    rewards = []
    for name, component in zip(settings.reward_names, settings.reward):
        if component.verifiable:
            if "answer" not in prompts.rows[0]:
                raise BaiError(f"reward {name}: needs the prompts' reference answers, and {settings.prompts.source} "
                               f"has no `{settings.prompts.answer_column}` column (columns: "
                               f"{', '.join(prompts.columns)}; set train.prompts.answer_column)")
            check_answers(component.verifiable, prompts.rows, settings.prompts.source)
            rewards.append({"name": name, "weight": component.weight, "verifiable": component.verifiable})
            continue
        fetched = fetch(component.model, storage, store)
        check_reward_model(fetched.path, component.model)
        rewards.append({"name": name, "weight": component.weight,
                        "source": resolvable_uri(component.model, fetched.revision),
                        "fingerprint": fetched.fingerprint})
    init = None
    if settings.init in INIT_ROLES:
        donor = refs[carried_role(settings.init, merge.tokenizer_from)]
        template_folder = fetch(donor.source, storage, store).path
        if settings.init not in ("bai", "sft"):
            init = ActorInit(name=settings.init, source=donor.uri, fingerprint=donor.fingerprint)
    else:
        fetched = fetch(settings.init, storage, store)
        template_folder = fetched.path
        init = ActorInit(name=settings.init, source=resolvable_uri(settings.init, fetched.revision),
                         fingerprint=fetched.fingerprint)
    if prompts.conversational and not has_chat_template(template_folder):
        raise BaiError(f"prompts {settings.prompts.source}: chat prompts, but the actor's tokenizer (from "
                       f"{template_folder}) has no chat template; give text prompts or a model with one")
    if warning := context_warning(template_folder, f"train (the actor's config, from {settings.init})",
                                  settings.max_completion_length, [row["prompt"] for row in prompts.rows]):
        progress.note(warning, warning=True)
    return {"init": init.model_dump() if init else None, "rewards": rewards,
            "prompts": {"source": resolvable_uri(prompts.source), "fingerprint": prompts.fingerprint,
                        "rows": len(prompts.rows),
                        "conversational": prompts.conversational}}


class TrainStage(ArtifactStage[TrainRef]):
    """RL from the init checkpoint, published under train/<key>/: the actor (its marker records the TrainRef),
    metrics.jsonl, verdicts.json and the plots. Resumes from the store's last checkpoint of the same key."""

    doing = "training"

    def __init__(self, inputs: TrainInputs, settings: TrainSettings, storage: StorageConfig,
                 hooks: MonitorHooks | None = None, stop_at: int | None = None, continues: str | None = None):
        """`stop_at`: only the first steps of the planned run (its schedule unchanged); `continues`: the same run
        stopped earlier (its key), whose last checkpoint this one resumes when it has none of its own (tune's RL
        pilots)."""
        self.inputs, self.settings, self.storage = inputs, settings, storage
        self.hooks = hooks or MonitorHooks()
        self.store = open_store(storage)
        self.stop_at, self.continues = stop_at, continues

    def compute_key(self) -> str:
        import trl  # its version is part of what made the result (imports no torch by itself)

        # where it runs (deployment, the ranks' addresses) does not change the result; how many ranks do
        payload = {"init": self.inputs.init.fingerprint, "rewards": self.inputs.rewards,
                   "prompts": self.inputs.prompts["fingerprint"],
                   "settings": self.settings.model_dump(mode="json", exclude={"deployment": True, "launch": True,
                                                                               "generation": {"server_url"}}),
                   "trl": trl.__version__, "code": training_code_version(),
                   "verifiers": {c.verifiable: verifier_code(c.verifiable) for c in self.settings.reward
                                 if c.verifiable}}
        if self.settings.launch.distributed:
            payload["launch"] = self.settings.launch.key_part()
        if self.stop_at is not None:
            payload["stop_at"] = self.stop_at
            payload["continues"] = self.continues
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def folder(self) -> str:
        return layout.actor_folder(self.key)

    def lock_name(self) -> str:
        # the whole run's folder: checkpoints, metrics, actor
        return f"{self.store.url}/{layout.train_folder(self.key)}"

    def recorded(self, marker: dict) -> TrainRef:
        return TrainRef.model_validate(marker["result"])

    def build(self) -> TrainRef:
        return _train(self)

    def local_inputs(self) -> tuple[Path, dict[str, Path]]:
        """The init checkpoint and the reward models as local folders (what every machine's ranks load)."""
        return local_inputs(self.inputs, self.storage)


def run_train_stage(stage: TrainStage) -> tuple[TrainRef, How]:
    """The train stage's result and how it was had. On a machine other than 0 of `train.launch.machines`, this
    machine's ranks train with machine 0's (rl/launch/machines.py), which takes the lock and publishes."""
    from bai_core.rl.launch.config import this_machine

    launch = stage.settings.launch
    machine = this_machine(launch) if launch.machines > 1 else 0
    if machine == 0:
        return run_stage(stage)
    if (ref := stage.published()) is not None:
        return ref, "cached"
    from bai_core.rl.launch.machines import join_training

    return join_training(stage, machine), "built"


def local_inputs(inputs: TrainInputs, storage: StorageConfig) -> tuple[Path, dict[str, Path]]:
    """The init checkpoint and the reward models as local folders (fetched from the store or their source)."""
    init = inputs.init
    store_key = layout.merge_folder(init.merge_stage, init.merge_key) if init.merge_key else None
    return local_model(init.source, init.fingerprint, storage, store_key), reward_model_paths(inputs, storage)


def reward_model_paths(inputs: TrainInputs, storage: StorageConfig) -> dict[str, Path]:
    """The reward models as local folders, by component name (verifiable rewards have none)."""
    store = open_store(storage)
    return {r["name"]: fetch(r["source"], storage, store).path for r in inputs.rewards if r.get("source")}


def _resume_point(stage: TrainStage, folder: str) -> tuple[str, tuple[str, dict]] | None:
    """(run folder, checkpoint) to resume from: this key's own last checkpoint, else, for a run stopped early that
    continues a shorter stop of the same run, that one's. A checkpoint at the stop step itself is not resumed
    (TRL would train one step past it); the shorter run's is."""
    own = find_checkpoint(stage.store, folder)
    if own is not None and (stage.stop_at is None or own[1]["step"] < stage.stop_at):
        return folder, own
    if stage.continues is not None:
        earlier = layout.train_folder(stage.continues)
        if (checkpoint := find_checkpoint(stage.store, earlier)) is not None:
            return earlier, checkpoint
    return None


def _train(stage: TrainStage) -> TrainRef:
    from bai_core.rl.trainer import run_training

    store, key, inputs, settings, hooks = stage.store, stage.key, stage.inputs, stage.settings, stage.hooks
    folder = layout.train_folder(key)
    refuse_if_aborted(store, folder)
    workdir = cache_dir() / "train" / key[:24]
    shutil.rmtree(workdir, ignore_errors=True)  # TRL's scratch space; what matters is in the store
    resume_step, resume_from, earlier = 0, None, ""
    if (point := _resume_point(stage, folder)) is not None:
        run_folder, checkpoint = point
        resume_step, resume_from = checkpoint[1]["step"], store.materialize(*checkpoint)
        earlier = store.get_text(f"{run_folder}/metrics.jsonl")
        whose = "its" if run_folder == folder else f"the shorter run {run_folder}'s"
        progress.note(f"resuming {folder} from {whose} checkpoint at step {resume_step}")
    metrics = MetricsLog.resumed(workdir / "metrics.jsonl", lambda data: store.put_bytes(f"{folder}/metrics.jsonl",
                                                                                        data), earlier, resume_step)

    def checkpoint_saved(trl_checkpoint: Path, step: int) -> None:
        publish_checkpoint(store, folder, key, trl_checkpoint, step)

    init_path, reward_paths = stage.local_inputs()
    prompts = load_prompts(settings.prompts, stage.storage)
    if prompts.fingerprint != inputs.prompts["fingerprint"]:
        raise BaiError(f"prompts {prompts.source}: content changed since this run checked them; run it again")
    with AtomicFolder(store.local_path(layout.actor_folder(key)), overwrite=True) as actor:
        if settings.launch.distributed:
            from bai_core.rl.launch.ranks import train_on_ranks

            outcome = train_on_ranks(init_path, reward_paths, prompts, settings, workdir, actor.path, metrics, hooks,
                                     resume_from, stage.storage, folder, key)
        else:
            outcome = run_training(init_path, reward_paths, prompts, settings, workdir / "trl", actor.path, metrics,
                                   hooks, checkpoint_saved, resume_from, stage.stop_at)
        differs = publish_as_sibling(init_path, actor.path, settings.save_dtype) if outcome.aborted is None else None
        verdicts = {**outcome.diagnosis.to_json(), "fired": outcome.diagnosis.fired, "steps": outcome.steps,
                    "aborted": None if outcome.aborted is None else
                    {"detector": outcome.aborted[0], "step": outcome.aborted[1], "reason": outcome.aborted[2]}}
        verdicts_uri = store.put_text(f"{folder}/verdicts.json", json.dumps(verdicts, indent=2) + "\n")
        store.put_text(f"{folder}/{TRL_SETTINGS_FILE}", json.dumps(outcome.trl_settings, indent=2) + "\n")
        for line in outcome.diagnosis.story():
            progress.note(line, warning="DETECTED" in line)
        plots = _publish_plots(store, folder, workdir, outcome.diagnosis)
        if outcome.aborted:
            refuse_if_aborted(store, folder)
        ref = TrainRef(key=key, uri=store.uri(folder), actor=store.uri(layout.actor_folder(key)),
                       fingerprint=fingerprint_folder(actor.path), metrics=store.uri(f"{folder}/metrics.jsonl"),
                       verdicts=verdicts_uri, plots=plots, steps=outcome.steps, fired=outcome.diagnosis.fired,
                       device=outcome.device, seconds=outcome.seconds)
        manifest = {**_manifest(inputs, settings, ref), "trl_in_effect": outcome.trl_settings,
                    "differs_from_start": differs}
        (actor.path / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    # The run's files beside its actor belong to the artifact: one deleted or cut short means training again.
    alongside = ("metrics.jsonl", "verdicts.json", TRL_SETTINGS_FILE,
                 *(f"plots/{uri.rsplit('/', 1)[1]}" for uri in plots))
    store.publish(layout.actor_folder(key), {"cache_key": key, "stage": "train", "fingerprint": ref.fingerprint,
                                      "result": ref.model_dump(mode="json")}, alongside=alongside)
    return ref


def _publish_plots(store: ArtifactStore, folder: str, workdir: Path, diagnosis) -> list[str]:
    from bai_core.stability.logs import read_log

    paths = write_plots(read_log(workdir / "metrics.jsonl"), diagnosis, workdir / "plots")
    return [store.put_bytes(f"{folder}/plots/{path.name}", path.read_bytes()) for path in paths]


def _manifest(inputs: TrainInputs, settings: TrainSettings, ref: TrainRef) -> dict:
    import trl

    return {"kind": "bai-train", "bai_version": bai_core.__version__, "trl_version": trl.__version__,
            "training_code": training_code_version(), "cache_key": ref.key, "algorithm": settings.algorithm,
            "init": inputs.init.model_dump(), "rewards": inputs.rewards, "prompts": inputs.prompts,
            "settings": settings.model_dump(mode="json"), "steps": ref.steps, "fired": ref.fired,
            "device": ref.device}
