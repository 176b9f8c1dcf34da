"""The demo model family, trained offline on CPU: pretrained, instruct and reasoning causal LMs and a reward model.

They relate the way the paper's do: one base (Llama architecture, ~1M parameters at `demo` size) trained on plain
task text; an instruct model fine-tuned from it to answer briefly; a reasoning model fine-tuned from it on a
programmatic teacher's step-by-step traces inside <think>...</think>; and a reward model (sequence classification,
initialized from the base) trained on preference pairs. Same tokenizer, same architecture, same base: the merge
engine merges them directly.

What the reward model prefers: a correct final answer over a wrong one (same format, same prompt; the wrong answers
are near misses: off by 1, 2 or 10, with a trace that computes the wrong problem), and a complete answer over one cut
off before its final number. It does not look at length on purpose; how well it learned this is in the report.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bai_core.demo.arithmetic import Problem, extract_answer, problems, trace
from bai_core.demo.tokenizer import CHAT_TEMPLATE, write_char_tokenizer
from bai_core.errors import BaiError
from bai_core.fingerprint import fingerprint_folder
from bai_core.io.atomic import AtomicFolder

FAMILY_VERSION = 2  # part of recipe_id, with the size's settings and the recipe's source code
LANGUAGE_MODELS = ("pretrained", "instruct", "reasoning")
MEMBERS = (*LANGUAGE_MODELS, "reward")
MANIFEST = "family.json"
VOCAB_SIZE = 128  # the character tokenizer's 105 tokens, rounded up
Progress = Callable[[str, int, int], None]  # (phase, step, total steps)


@dataclass(frozen=True)
class Schedule:
    """One training run: its length, batch and AdamW settings; linear warmup, then cosine decay to 10% of the peak."""

    steps: int
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.01

    def rate(self, step: int) -> float:
        if step < self.warmup:
            return self.learning_rate * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class FamilySize:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    pretrain: Schedule
    instruct: Schedule
    reasoning: Schedule
    reward: Schedule
    train_problems: int = 20000
    eval_problems: int = 200
    # Two-digit plus/minus one-digit: a tiny model can learn to answer these directly (two-digit operands on both
    # sides it cannot, in minutes), and the step-by-step trace still makes reasoning answers ~10x longer.
    a_range: tuple[int, int] = (10, 99)
    b_range: tuple[int, int] = (1, 9)


SIZES = {
    "test": FamilySize(hidden=64, layers=2, heads=4, intermediate=192,
                       pretrain=Schedule(150, batch_size=16), instruct=Schedule(800, batch_size=16),
                       reasoning=Schedule(500, batch_size=16), reward=Schedule(40, batch_size=16),
                       train_problems=4000, eval_problems=64),
    "demo": FamilySize(hidden=128, layers=4, heads=4, intermediate=512,
                       pretrain=Schedule(500), instruct=Schedule(700, learning_rate=1e-3),
                       reasoning=Schedule(600, learning_rate=1e-3),
                       reward=Schedule(200)),
}


def recipe_id(size: str) -> str:
    """Identifies what a family of this size is made of: its settings and the code of the data and training recipe,
    so any change to them (not just a remembered version bump) makes cached families stale."""
    digest = hashlib.sha256(json.dumps({"version": FAMILY_VERSION, **asdict(SIZES[size])}, sort_keys=True).encode())
    for module in ("arithmetic.py", "family.py", "tokenizer.py", "training.py"):
        digest.update((Path(__file__).parent / module).read_bytes())
    return f"v{FAMILY_VERSION}-{digest.hexdigest()[:10]}"


@dataclass
class FamilyReport:
    size: str
    seed: int
    recipe: str
    seconds: float
    models: dict[str, dict]  # member -> fingerprint, metrics

    def to_json(self) -> dict:
        return asdict(self)


def build_family(output: Path, size: str = "demo", seed: int = 0, overwrite: bool = False,
                 progress: Progress | None = None) -> FamilyReport:
    """Train the family into `output` (atomically), or return the report of the one already there."""
    if size not in SIZES:
        raise BaiError(f"unknown demo size {size!r} (known: {', '.join(SIZES)})")
    if seed < 0:
        raise BaiError(f"seed must be >= 0, got {seed}")
    existing = cached_family(output, size, seed)
    if existing is not None:
        return existing
    from bai_core.demo.training import fixed_threads  # torch: imported only when there is training to do

    staging = AtomicFolder(output, overwrite=overwrite)
    try:
        with fixed_threads():
            report = _train(staging.path, SIZES[size], size, seed, progress or (lambda *_: None))
        (staging.path / MANIFEST).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    except BaseException:
        staging.discard()
        raise
    staging.publish()
    return report


def cached_family(output: Path, size: str, seed: int) -> FamilyReport | None:
    """The report of an intact family with this size, seed and recipe version at `output`, else None."""
    try:
        report = FamilyReport(**json.loads((output / MANIFEST).read_text()))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, TypeError):
        return None
    if (report.size, report.seed, report.recipe) != (size, seed, recipe_id(size)):
        return None
    for member in MEMBERS:
        folder = output / member
        if not folder.is_dir() or fingerprint_folder(folder) != report.models[member]["fingerprint"]:
            return None
    return report


def _config(spec: FamilySize, vocab_size: int, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=spec.hidden, num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                       num_key_value_heads=spec.heads, intermediate_size=spec.intermediate, vocab_size=vocab_size,
                       max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                       pad_token_id=0, **extra)


def _train(root: Path, spec: FamilySize, size: str, seed: int, progress: Progress) -> FamilyReport:
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerFast
    from transformers.utils import logging as transformers_logging

    from bai_core.demo.training import encode_chat, encode_text, train_causal_lm, train_reward_model

    transformers_logging.disable_progress_bar()  # ours (or the Prefect artifact) shows progress; theirs is noise
    started = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer_dir = root / ".tokenizer"
    write_char_tokenizer(tokenizer_dir, CHAT_TEMPLATE, vocab_size=VOCAB_SIZE)
    # local_files_only: transformers writes this load-time flag into every saved tokenizer_config.json, so leaving it
    # to HF_HUB_OFFLINE made the family's fingerprints depend on the environment. It is a local folder: say so.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir, local_files_only=True)
    train = problems("train", seed, spec.a_range, spec.b_range, spec.train_problems)
    data = {
        "pretrained": [encode_text(tokenizer, text) for text in pretraining_corpus(train, seed)],
        "instruct": [encode_chat(tokenizer, p.question, p.instruct_answer()) for p in train],
        "reasoning": [encode_chat(tokenizer, p.question, p.reasoning_answer()) for p in train],
    }

    def step_progress(phase: str):
        return lambda step, total, loss: progress(phase, step, total)

    base = LlamaForCausalLM(_config(spec, VOCAB_SIZE))
    train_causal_lm(base, data["pretrained"], spec.pretrain, seed, tokenizer.pad_token_id, step_progress("pretrained"))
    _save(base, tokenizer, root / "pretrained")
    for offset, (member, schedule) in enumerate([("instruct", spec.instruct), ("reasoning", spec.reasoning)], 1):
        model = LlamaForCausalLM.from_pretrained(root / "pretrained")
        train_causal_lm(model, data[member], schedule, seed + offset, tokenizer.pad_token_id, step_progress(member))
        _save(model, tokenizer, root / member)

    reward = LlamaForSequenceClassification(_config(spec, VOCAB_SIZE, num_labels=1))
    reward.model.load_state_dict(base.model.state_dict())  # a reward model starts from the base, as usual
    pairs = preference_pairs(tokenizer, train, seed)
    train_reward_model(reward, pairs, spec.reward, seed + 3, tokenizer.pad_token_id, step_progress("reward"))
    _save(reward, tokenizer, root / "reward")
    shutil.rmtree(tokenizer_dir)

    held_out = problems("eval", seed, spec.a_range, spec.b_range, spec.eval_problems)
    models = {}
    for member in LANGUAGE_MODELS:
        progress("evaluate", LANGUAGE_MODELS.index(member), len(MEMBERS))
        model = LlamaForCausalLM.from_pretrained(root / member)
        models[member] = {"fingerprint": fingerprint_folder(root / member), **evaluate_lm(model, tokenizer, held_out)}
    eval_pairs = preference_pairs(tokenizer, held_out, seed + 1)
    models["reward"] = {"fingerprint": fingerprint_folder(root / "reward"),
                        **evaluate_reward(reward, eval_pairs, tokenizer.pad_token_id)}
    progress("evaluate", len(MEMBERS), len(MEMBERS))
    return FamilyReport(size, seed, recipe_id(size), round(time.perf_counter() - started, 1), models)


def pretraining_corpus(train: list[Problem], seed: int) -> list[str]:
    """Plain text: the training stories, and the one-digit facts every base model has read somewhere."""
    facts = [f"{x} {op} {y} = {x + y if op == '+' else x - y}." for x in range(10) for y in range(10) for op in "+-"
             if op == "+" or x >= y]
    rng = random.Random(f"corpus:{seed}")
    return [p.plain() for p in train] + [" ".join(rng.sample(facts, 4)) for _ in range(len(train) // 4)]


def _save(model, tokenizer, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def preference_pairs(tokenizer, items: list[Problem], seed: int) -> list[tuple[list[int], list[int]]]:
    """(chosen, rejected) token sequences: correct vs near-miss or cut-off answers, in both answer styles."""
    from bai_core.demo.training import encode_chat

    rng = random.Random(f"pairs:{seed}")
    pairs = []
    for p in items:
        wrong = p.answer + rng.choice([-10, -2, -1, 1, 2, 10])
        wrong_b = p.b + (wrong - p.answer) * (1 if p.op == "+" else -1)
        if rng.random() < 0.5:
            chosen, rejected = p.instruct_answer(), f"{p.a}{p.op}{p.b}={wrong}"
        else:
            chosen = p.reasoning_answer()
            if rng.random() < 0.8:
                rejected = f"<think>{trace(p.op, p.a, wrong_b)}</think>{wrong}" if wrong_b >= 0 else str(wrong)
            else:
                rejected = chosen.split("</think>")[0]  # cut off before the final answer
        pairs.append((encode_chat(tokenizer, p.question, chosen)[0], encode_chat(tokenizer, p.question, rejected)[0]))
    return pairs


def evaluate_lm(model, tokenizer, items: list[Problem], batch_size: int = 64, max_new_tokens: int = 64) -> dict:
    """Greedy answers to held-out chat prompts: accuracy, think-block rate, mean answer length in tokens; and
    accuracy on the plain-text format the base model was trained on (completing '... so Ann has').
    (`generate` runs without gradients by itself.)"""
    tokenizer.padding_side = "left"
    correct = think = lengths = plain_correct = 0
    for start in range(0, len(items), batch_size):
        batch = items[start: start + batch_size]
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p.question}],
                                                 add_generation_prompt=True, tokenize=False) for p in batch]
        for p, text, n_tokens in zip(batch, *_generate(model, tokenizer, prompts, max_new_tokens)):
            style = "reasoning" if "<think>" in text else "instruct"
            think += style == "reasoning"
            correct += extract_answer(text, style) == p.answer
            lengths += n_tokens
        plain_prompts = [tokenizer.bos_token + p.plain().split(", so ")[0] + f", so {p.name} has" for p in batch]
        for p, text, _ in zip(batch, *_generate(model, tokenizer, plain_prompts, 6)):
            plain_correct += extract_answer(text, "instruct") == p.answer
    n = len(items)
    return {"accuracy": round(correct / n, 3), "think_rate": round(think / n, 3),
            "mean_answer_tokens": round(lengths / n, 1), "plain_text_accuracy": round(plain_correct / n, 3)}


def _generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> tuple[list[str], list[int]]:
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    new = output[:, inputs["input_ids"].shape[1]:]
    texts, counts = [], []
    for row in new.tolist():
        if tokenizer.eos_token_id in row:
            row = row[: row.index(tokenizer.eos_token_id)]
        counts.append(len(row))
        texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return texts, counts


def evaluate_reward(model, pairs: list[tuple[list[int], list[int]]], pad_id: int) -> dict:
    from bai_core.demo.training import reward_scores

    chosen = reward_scores(model, [c for c, _ in pairs], pad_id)
    rejected = reward_scores(model, [r for _, r in pairs], pad_id)
    wins = sum(c > r for c, r in zip(chosen, rejected))
    return {"pairwise_accuracy": round(wins / len(pairs), 3),
            "mean_chosen_score": round(sum(chosen) / len(chosen), 3),
            "mean_rejected_score": round(sum(rejected) / len(rejected), 3)}


def format_report(report: FamilyReport) -> str:
    """The family as a table: what each model does on held-out problems."""
    lines = [f"demo family: size {report.size}, seed {report.seed}, recipe {report.recipe}, "
             f"trained in {report.seconds:.0f} s",
             f"{'model':<11}{'accuracy':>9}{'think':>7}{'answer tokens':>15}{'plain-text acc':>16}  fingerprint"]
    for member in LANGUAGE_MODELS:
        m = report.models[member]
        lines.append(f"{member:<11}{m['accuracy']:>9.1%}{m['think_rate']:>7.0%}{m['mean_answer_tokens']:>15.1f}"
                     f"{m['plain_text_accuracy']:>16.1%}  {m['fingerprint'][:19]}")
    r = report.models["reward"]
    lines.append(f"{'reward':<11}pairwise accuracy {r['pairwise_accuracy']:.1%} on held-out preference pairs "
                 f"(chosen {r['mean_chosen_score']:+.2f} vs rejected {r['mean_rejected_score']:+.2f})  "
                 f"{r['fingerprint'][:19]}")
    return "\n".join(lines)
