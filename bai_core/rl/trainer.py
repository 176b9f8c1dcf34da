"""One RL run with TRL's GRPOTrainer or RLOOTrainer, used as they are, plus bai's monitor and reward wrappers.

TRL 1.16 has no PPO trainer (the paper's algorithm); GRPO and RLOO are its on-policy RLHF trainers, both critic-free.
Checkpoints are TRL's own (model.safetensors, optimizer and scheduler state, RNG state, trainer_state.json);
transformers reads the non-weight files back with torch.load(weights_only=True), which refuses arbitrary pickles.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from bai_core.completion import CompletionReader
from bai_core.errors import BaiError
from bai_core.rl.config import TrainSettings, trl_class
from bai_core.rl.metrics import MetricsLog, MonitorHooks
from bai_core.rl.monitor import StabilityMonitor
from bai_core.rl.prompts import PromptSet
from bai_core.rl.rewards import ModelReward, RewardRecorder, VerifiableReward
from bai_core.stability.detectors import Diagnosis

CheckpointSaved = Callable[[Path, int], None]  # (TRL's checkpoint folder, step): rank 0 publishes it


# TRL's arguments that change what training does, recorded as they were in effect (bai's, the user's `trl:`, or
# TRL's own default): the defaults differ between TRL versions and between GRPO and RLOO.
IN_EFFECT = ("learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "beta",
             "epsilon", "loss_type", "scale_rewards", "normalize_advantages", "importance_sampling_level",
             "num_iterations", "num_generations", "per_device_train_batch_size", "gradient_accumulation_steps",
             "steps_per_generation", "max_completion_length", "mask_truncated_completions", "temperature", "top_p",
             "top_k", "seed", "bf16", "use_vllm", "vllm_mode")


@dataclass
class TrainOutcome:
    steps: int
    seconds: float
    diagnosis: Diagnosis | None
    aborted: tuple[str, int, str] | None  # (detector, step, reason) when abort_on stopped the run
    device: str
    trl_settings: dict  # IN_EFFECT as they were, for the manifest and the run's page


def in_effect(config) -> dict:
    from enum import Enum

    values = {name: getattr(config, name) for name in IN_EFFECT if hasattr(config, name)}
    return {name: value.value if isinstance(value, Enum) else value for name, value in values.items()}


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def world_size() -> int:
    """How many ranks train together: 1 in the stage's own process, WORLD_SIZE under a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def trl_config(settings: TrainSettings, output_dir: Path, on_gpu: bool):
    """TRL's config for this run: bai's settings, then the user's pass-through `trl:` arguments. `batch_size` is
    the step's whole batch: each of the ranks generates its share."""
    import torch

    Config = trl_class(settings.algorithm, "config")  # a class
    arguments = dict(
        output_dir=str(output_dir), max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size // world_size(), ddp_timeout=settings.launch.timeout_s,
        num_generations=settings.generations, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, learning_rate=settings.learning_rate, beta=settings.kl_coef,
        seed=settings.seed, reward_weights=[c.weight for c in settings.reward],
        save_strategy="steps", save_steps=settings.save_every, save_total_limit=2,
        logging_steps=1, report_to="none", disable_tqdm=True, log_completions=False,
        use_cpu=not on_gpu, bf16=on_gpu and torch.cuda.is_bf16_supported(),
    )
    try:
        return Config(**{**arguments, **settings.generation.trl_arguments(), **settings.trl})
    except (ValueError, TypeError) as e:  # TRL's own consistency checks on the combination
        raise BaiError(f"train: TRL refused these settings: {str(e).splitlines()[0]}") from None


def _checkpoint_upload(on_saved: CheckpointSaved):
    """A callback that hands each of TRL's checkpoints on (to the artifact store) once TRL has written it."""
    from transformers import TrainerCallback

    class CheckpointUpload(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            import torch.distributed as dist

            if state.global_step > state.max_steps:  # the untrained step past the end of a run resumed there
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_local_process_zero and not state.is_world_process_zero and folder.is_dir():
                on_saved(folder, state.global_step)  # another machine's first rank: its ranks' RNG states
            if dist.is_available() and dist.is_initialized():
                dist.barrier()  # every rank's RNG state is written (and handed over) before rank 0 publishes
            if state.is_world_process_zero and folder.is_dir():
                on_saved(folder, state.global_step)

    return CheckpointUpload()


def _stop_at(step: int):
    """A callback that ends the run after `step` with a checkpoint there: the first `step` steps of the planned run
    (its schedule unchanged), which a longer stop of the same run resumes (tune's RL pilots, bai_core/tune/pilot.py)."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= step:
                control.should_training_stop = True
                control.should_save = True

    return StopAt()


def run_training(init: Path, reward_models: dict[str, Path], prompts: PromptSet, settings: TrainSettings,
                 workdir: Path, actor_output: Path, metrics: MetricsLog, hooks: MonitorHooks,
                 on_checkpoint: CheckpointSaved, resume_from: Path | None = None,
                 stop_at: int | None = None) -> TrainOutcome:
    """Train from `init` and save the final actor (weights and tokenizer) into `actor_output`, unless a detector
    in `abort_on` stopped the run (then the last checkpoint went to `on_checkpoint` and nothing is saved there).
    With `stop_at`, the run ends after that step of its planned `settings.steps` (same schedule)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from transformers.utils import logging as transformers_logging

    from bai_core.threads import fixed_threads

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()  # bai shows the run's progress; per-file loading bars are noise
    # TRL 1.16 still calls transformers' gradient_checkpointing names, deprecated in transformers 5: noise to users.
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
    on_gpu = device() == "cuda"
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(init, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(init, local_files_only=True, use_safetensors=True,
                                                 dtype=torch.bfloat16 if on_gpu else torch.float32)
    recorder = RewardRecorder()
    # How the actor's completions read: what its chat template's generation prompt opens, which ids stop it.
    reader = CompletionReader.of_checkpoint(init, [tokenizer.pad_token_id])
    reward_funcs = [ModelReward(name, reward_models[name], recorder, reader, device()) if c.model
                    else VerifiableReward(name, c.verifiable, recorder, reader, c.score_truncated)
                    for name, c in zip(settings.reward_names, settings.reward)]
    monitor = StabilityMonitor(settings, recorder, metrics, hooks)
    Trainer = trl_class(settings.algorithm, "trainer")  # a class
    # One CPU thread, like the demo family: the same bits on every machine and graceful on a busy one.
    config = trl_config(settings, workdir, on_gpu)
    with fixed_threads() if not on_gpu else nullcontext():
        trainer = Trainer(model=model, reward_funcs=reward_funcs, args=config,
                          train_dataset=Dataset.from_list(prompts.rows), processing_class=tokenizer,
                          callbacks=[monitor, _checkpoint_upload(on_checkpoint),
                                     *([_stop_at(stop_at)] if stop_at else [])])
        trainer.remove_callback(PrinterCallback)  # it prints every log dict; bai reports progress itself
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    # Resumed from the last step's checkpoint, TRL counts one step more than it trains (the weights do not move).
    steps = min(trainer.state.global_step, stop_at or settings.steps)
    if monitor.diagnosis is None or monitor.aborted is None:
        monitor.diagnosis = monitor.diagnose(settings.steps)
    if monitor.aborted is None:
        # The weights (rank 0's, when there are several); the stage makes the folder a sibling of the start
        # (rl/actor.py: its dtype, config and tokenizer files).
        trainer.save_model(str(actor_output))
        if trainer.accelerator.is_main_process:
            (actor_output / "training_args.bin").unlink(missing_ok=True)  # a pickle; the manifest has the settings
    return TrainOutcome(steps=steps, seconds=round(time.perf_counter() - started, 2), diagnosis=monitor.diagnosis,
                        aborted=monitor.aborted, device="cuda" if on_gpu else "cpu", trl_settings=in_effect(config))

