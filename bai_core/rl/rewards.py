"""The RL reward as TRL reward functions, each also recording what TRL does not log: every completion's reward and
length, so the monitor can report reward per response-length bucket (the paper's Figure 2) and length percentiles.

A learned reward model is scored here rather than handed to TRL as a model, for that reason; it is scored the way
TRL scores one (chat template of the reward model's own tokenizer over prompt + completion, right padding, logit 0).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

from bai_core import plugins
from bai_core.completion import OPEN_THINK, TRUNCATED, CompletionReader, answer_part
from bai_core.errors import BaiError


@dataclass
class RewardRecorder:
    """Per-completion values of the latest generation batch: lengths, how each ended (finished, open_think or
    truncated: `bai_core.completion`) and each reward component's scores. (With TRL's default one generation per
    optimizer step, that is the step's batch.)"""

    lengths: list[int] = field(default_factory=list)
    components: dict[str, list[float]] = field(default_factory=dict)
    statuses: list[str] = field(default_factory=list)

    def record(self, name: str, completion_ids: list, values: list[float], statuses: list[str]) -> None:
        lengths = [len(ids) for ids in completion_ids]
        if lengths != self.lengths or name in self.components:  # a new batch (the first component to score it)
            self.lengths, self.components, self.statuses = lengths, {}, list(statuses)
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

    def __init__(self, name: str, path: Path, recorder: RewardRecorder, reader: CompletionReader,
                 device: str = "cpu"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.__name__ = name  # TRL names the metric rewards/<__name__>/mean
        self.recorder, self.reader = recorder, reader
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
        statuses = [self.reader.status(p, t, ids) for p, t, ids in zip(prompts, _texts(completions), completion_ids)]
        self.recorder.record(self.__name__, completion_ids, scores, statuses)
        return scores


def _math_timeout() -> int | None:
    """math-verify times out with signal.alarm, which works only in the main thread (as in TRL's accuracy_reward)."""
    import threading

    return 5 if threading.current_thread() is threading.main_thread() else None


def parse_math_answer(answer) -> list:
    """A reference answer as math-verify reads it: GSM8K's `... #### 72` (what follows ####), MATH's solutions
    (their \\boxed{}), or a bare number or LaTeX expression (`\\frac{1}{3}`, read as math). [] if unreadable."""
    return _parse_reference(str(answer).strip())


@functools.lru_cache(maxsize=4096)  # a prompt's reference is read once per generation and step, not re-parsed
def _parse_reference(text: str) -> list:
    from math_verify import parse

    if "####" in text:  # GSM8K: the final answer follows ####, sometimes with thousands separators
        text = text.rsplit("####", 1)[1].strip().replace(",", "")
    if "\\boxed" not in text and "$" not in text:
        text = f"${text}$"
    return parse(text, parsing_timeout=_math_timeout()) if text.strip("$") else []


def math_correct(completion: str, answer, prompt_opened_think: bool = False) -> bool:
    """Hugging Face's math-verify (the verifier of TRL's accuracy_reward and lm-eval's MATH-500): the completion's
    answer (a \\boxed{} first, else the last LaTeX or plain expression after the think block; none in a think block
    that never closed) against the reference, equal as numbers, fractions or symbolic expressions."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold = parse_math_answer(answer)
    text = answer_part(completion, prompt_opened_think) or ""
    if not gold or not text.strip():
        return False
    timeout = _math_timeout()
    predicted = parse(text, extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
                      parsing_timeout=timeout)
    return bool(predicted) and bool(verify(gold, predicted, timeout_seconds=timeout))


def _unreadable_math(answer) -> str | None:
    if parse_math_answer(answer):
        return None
    return (f"math-verify cannot read the answer {str(answer)[:60]!r} (give a number, a LaTeX expression, a "
            "\\boxed{} solution or GSM8K's `#### N`)")


# bai's own verifiers; plug-ins add theirs (bai_core/plugins.py), e.g. the demo task's `arithmetic`.
VERIFIERS = {"math": plugins.Verifier(name="math", correct=math_correct, unreadable=_unreadable_math)}


def verifier(kind: str) -> plugins.Verifier:
    return VERIFIERS.get(kind) or plugins.verifier(kind)


def verifier_code(kind: str) -> str:
    """A short hash of the file that holds the verifier's rule: a plug-in's verifier decides rewards as bai's own
    code does, so editing it makes cached training stale (part of the train key)."""
    import hashlib
    import inspect

    return hashlib.sha256(Path(inspect.getsourcefile(verifier(kind).correct)).read_bytes()).hexdigest()[:12]


def check_answers(kind: str, rows: list[dict], source: str) -> None:
    """Every prompt row has a reference answer the verifier can read (before anything is merged or trained)."""
    unreadable = verifier(kind).unreadable
    for number, row in enumerate(rows, 1):
        answer = row.get("answer")
        if answer is None or str(answer).strip() == "":
            raise BaiError(f"prompts {source}: row {number} has no answer (the {kind} reward needs one per prompt)")
        if (why := unreadable(answer)) is not None:
            raise BaiError(f"prompts {source}: row {number}: {why}")


def _texts(completions: list) -> list[str]:
    return [c[-1]["content"] if isinstance(c, list) else c for c in completions]


class VerifiableReward:
    """A checkable reward: 1.0 when the completion's final answer equals the row's `answer` by the verifier of its
    kind (math: math-verify; a plug-in's, e.g. the demo task's arithmetic), else 0.0. Read as the chat template wrote
    it (`CompletionReader`): a think block that never closed holds no answer, and a completion the token limit cut
    before its stop id earns 0 unless `score_truncated`."""

    def __init__(self, name: str, kind: str, recorder: RewardRecorder, reader: CompletionReader,
                 score_truncated: bool = False):
        self.__name__ = name
        self.correct = verifier(kind).correct
        self.recorder, self.reader, self.score_truncated = recorder, reader, score_truncated

    def __call__(self, prompts: list, completions: list, completion_ids: list, answer: list | None = None,
                 **_) -> list[float]:
        if answer is None:
            raise BaiError(f"the {self.__name__} reward needs an `answer` column in the prompts")
        texts, scores = _texts(completions), []
        statuses = [self.reader.status(p, t, ids) for p, t, ids in zip(prompts, texts, completion_ids)]
        for prompt, text, status, reference in zip(prompts, texts, statuses, answer):
            if status == OPEN_THINK or (status == TRUNCATED and not self.score_truncated):
                scores.append(0.0)
            else:
                scores.append(float(self.correct(text, reference, self.reader.prompt_opens_think(prompt))))
        self.recorder.record(self.__name__, completion_ids, scores, statuses)
        return scores
