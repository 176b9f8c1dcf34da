"""The RL reward as TRL reward functions, each also recording what TRL does not log: every completion's reward and
length, so the monitor can report reward per response-length bucket (the paper's Figure 2) and length percentiles.

A learned reward model is scored here rather than handed to TRL as a model, for that reason; it is scored the way
TRL scores one (chat template of the reward model's own tokenizer over prompt + completion, right padding, logit 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bai_core.errors import BaiError


@dataclass
class RewardRecorder:
    """Per-completion values of the latest generation batch: lengths and each reward component's scores. (With
    TRL's default one generation per optimizer step, that is the step's batch.)"""

    lengths: list[int] = field(default_factory=list)
    components: dict[str, list[float]] = field(default_factory=dict)

    def record(self, name: str, completion_ids: list, values: list[float]) -> None:
        lengths = [len(ids) for ids in completion_ids]
        if lengths != self.lengths or name in self.components:  # a new batch (the first component to score it)
            self.lengths, self.components = lengths, {}
        self.components[name] = list(values)


def check_reward_model(path: Path, source: str) -> None:
    """A reward model must be a sequence classifier with one score (TRL reads logit 0) and a tokenizer."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        raise BaiError(f"reward model {source}: no readable config.json") from None
    architectures = config.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise BaiError(f"reward model {source}: not a sequence classifier (its config.json says "
                       f"{', '.join(architectures) or 'no architecture'}); give an *ForSequenceClassification "
                       "checkpoint")
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise BaiError(f"reward model {source}: no tokenizer files; a reward model is scored with its own tokenizer")


class ModelReward:
    """A sequence-classification reward model as a TRL reward function."""

    def __init__(self, name: str, path: Path, recorder: RewardRecorder, device: str = "cpu"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.__name__ = name  # TRL names the metric rewards/<__name__>/mean
        self.recorder = recorder
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True,
                                                                        use_safetensors=True).to(device).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device = device

    def texts(self, prompts: list, completions: list) -> list[str]:
        if isinstance(prompts[0], list):  # chat: the reward model's own template over the whole conversation
            return [self.tokenizer.apply_chat_template(p + c, tokenize=False) for p, c in zip(prompts, completions)]
        return [p + c for p, c in zip(prompts, completions)]

    def __call__(self, prompts: list, completions: list, completion_ids: list, **_) -> list[float]:
        import torch

        batch = self.tokenizer(self.texts(prompts, completions), return_tensors="pt", padding=True,
                               padding_side="right", add_special_tokens=False).to(self.device)
        with torch.inference_mode():
            scores = self.model(**batch).logits[:, 0].float().tolist()
        self.recorder.record(self.__name__, completion_ids, scores)
        return scores


class ArithmeticReward:
    """Verifiable: 1.0 when the completion's final answer equals the row's `answer`, else 0.0 (the demo task's
    extraction: the number after </think> in a think-block answer, else the last number)."""

    def __init__(self, name: str, recorder: RewardRecorder):
        self.__name__ = name
        self.recorder = recorder

    def __call__(self, prompts: list, completions: list, completion_ids: list, answer: list | None = None,
                 **_) -> list[float]:
        from bai_core.demo.arithmetic import extract_answer

        if answer is None:
            raise BaiError("the arithmetic reward needs an `answer` column in the prompts")
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        scores = [float(extract_answer(t, "reasoning" if "<think>" in t else "instruct") == int(a))
                  for t, a in zip(texts, answer)]
        self.recorder.record(self.__name__, completion_ids, scores)
        return scores
