"""Small, deterministic training loops for the demo family: causal-LM fine-tuning and a pairwise reward model.

Plain PyTorch on purpose: the models are ~1M parameters, the data fits in memory, and a loop this short is easier to
make bit-for-bit reproducible (same seed, same weights) than a general trainer. Loss is taken only where the mask
says (the answer part of a chat example, everything of pretraining text).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from bai_core.demo.recipe import Schedule

# One torch thread, whatever the machine. Two reasons, both measured here (2 cores; 40 steps of demo-size training):
# - bits: the thread count can change them (3 threads gave other weights than 1, 2 or 4), so a build that followed
#   the core count would not give the same family on every machine;
# - load: with 2 threads a step waits for both at every parallel region, so sharing the cores collapses throughput
#   (two builds at once: 6.2x slower each; beside 2 busy processes: 3.3x), while 1 thread degrades gracefully
#   (1.05x and 1.65x). Quiet, 1 thread is 1.58x slower than 2 on these tiny models.
TRAINING_THREADS = 1
# The kernels every build computes with, whatever the processor: ATen's generic (not vectorized) kernels, and MKL's
# COMPATIBLE branch (SSE2 code, the branch MKL documents as giving the same results on Intel and other x86
# processors). Left to themselves, torch picks its AVX2 or AVX-512 kernels by CPU features and MKL its code path by
# processor, and a build's bits follow: on this project's AMD EPYC, ATEN_CPU_CAPABILITY=default alone and
# MKL_CBWR=COMPATIBLE alone each gave other weights, and on an Intel Xeon the test-size family came out another
# family (research/cpu-portability/README.md). Both switches are read when the libraries load, so a build runs in a
# process started with them (bai_core/demo/builder.py). They cost time: a pinned build takes about twice as long.
TRAINING_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}

Example = tuple[list[int], list[int]]  # token ids, loss mask (1 = learn this token)
StepCallback = Callable[[int, int, float], None]  # (step, total steps, loss)


@contextmanager
def fixed_threads(n: int = TRAINING_THREADS) -> Iterator[None]:
    """Run torch on exactly `n` intra-op threads inside the block (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encode_chats(tokenizer, conversations: list[tuple[str, str]]) -> list[Example]:
    """(user prompt, assistant answer) pairs as examples; only the answer (and its end-of-turn) is learned.

    The chat template is rendered once, around a placeholder, and checked against a real rendering: Jinja per
    example and one tokenizer call per string took about a minute for the demo size's 100k strings."""
    render = lambda prompt: tokenizer.apply_chat_template(  # noqa: E731
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    before, after = render("\x00").split("\x00")
    prefixes = [before + prompt + after for prompt, _ in conversations]
    if conversations and prefixes[0] != render(conversations[0][0]):
        prefixes = [render(prompt) for prompt, _ in conversations]
    prompt_ids = tokenizer(prefixes, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer([answer + tokenizer.eos_token for _, answer in conversations],
                           add_special_tokens=False)["input_ids"]
    return [(p + a, [0] * len(p) + [1] * len(a)) for p, a in zip(prompt_ids, answer_ids)]


def encode_texts(tokenizer, texts: list[str]) -> list[Example]:
    """Plain text between <s> and </s>, all of it learned (pretraining)."""
    ids = tokenizer([tokenizer.bos_token + text + tokenizer.eos_token for text in texts],
                    add_special_tokens=False)["input_ids"]
    return [(row, [0] + [1] * (len(row) - 1)) for row in ids]


def pad_batch(examples: list[Example], pad_id: int,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (tokens, loss_mask) in enumerate(examples):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = torch.tensor(loss_mask)
        attention[row, : len(tokens)] = 1
    return ids.to(device), mask.to(device), attention.to(device)


def _optimizer(model: torch.nn.Module, schedule: Schedule) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=schedule.learning_rate, weight_decay=schedule.weight_decay,
                             betas=(0.9, 0.98))


def train_causal_lm(model, examples: list[Example], schedule: Schedule, seed: int, pad_id: int,
                    on_step: StepCallback | None = None, replay: list[Example] | None = None) -> list[float]:
    """Next-token training on the masked tokens; returns the loss per step. With `replay` (the pretraining text)
    and `schedule.replay` > 0, that share of every batch is drawn from it: the fine-tune keeps rehearsing what the
    base knew, which keeps it near the base."""
    pool = examples + (replay or [])
    n_replay = round(schedule.replay * schedule.batch_size) if replay else 0

    def loss(picks: list[int]) -> torch.Tensor:
        ids, mask, attention = pad_batch([pool[i] for i in picks], pad_id, model.device)
        logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    def sample(generator: torch.Generator) -> list[int]:
        own = torch.randint(len(examples), (schedule.batch_size - n_replay,), generator=generator).tolist()
        if not n_replay:
            return own
        return own + (len(examples) + torch.randint(len(pool) - len(examples), (n_replay,),
                                                    generator=generator)).tolist()

    return train_loop(model, sample, loss, schedule, seed, on_step)


def train_reward_model(model, pairs: list[tuple[list[int], list[int]]], schedule: Schedule, seed: int, pad_id: int,
                       on_step: StepCallback | None = None) -> list[float]:
    """Bradley-Terry training on (chosen, rejected) token sequences: push r(chosen) above r(rejected)."""

    def loss(picks: list[int]) -> torch.Tensor:
        sequences = [pairs[i][0] for i in picks] + [pairs[i][1] for i in picks]
        ids, _, attention = pad_batch([(s, [0] * len(s)) for s in sequences], pad_id, model.device)
        scores = model(input_ids=ids, attention_mask=attention).logits.squeeze(-1)
        return -F.logsigmoid(scores[: len(picks)] - scores[len(picks):]).mean()

    def sample(generator: torch.Generator) -> list[int]:
        return torch.randint(len(pairs), (schedule.batch_size,), generator=generator).tolist()

    return train_loop(model, sample, loss, schedule, seed, on_step)


def train_loop(model, sample: Callable[[torch.Generator], list[int]],
               loss_of: Callable[[list[int]], torch.Tensor], schedule: Schedule, seed: int,
               on_step: StepCallback | None) -> list[float]:
    """The shared loop: seeded sampling with replacement, AdamW, warmup + cosine, gradient clipping; with
    `schedule.anchor` > 0, an L2 pull toward the weights the run started from (a fine-tune that stays near its base)."""
    generator = torch.Generator().manual_seed(seed)  # on the CPU whatever the model's device: the same picks anywhere
    optimizer = _optimizer(model, schedule)
    start = [p.detach().clone() for p in model.parameters()] if schedule.anchor else None
    model.train()
    losses = []
    for step in range(schedule.steps):
        loss = loss_of(sample(generator))
        if start is not None:
            loss = loss + schedule.anchor * sum(((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), start))
        _step(optimizer, model, loss, schedule.rate(step))
        losses.append(loss.item())
        if on_step:
            on_step(step + 1, schedule.steps, losses[-1])
    model.eval()
    return losses


def _step(optimizer: torch.optim.Optimizer, model: torch.nn.Module, loss: torch.Tensor, rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


@torch.no_grad()
def reward_scores(model, sequences: list[list[int]], pad_id: int, batch_size: int = 64) -> list[float]:
    scores = []
    for start in range(0, len(sequences), batch_size):
        ids, _, attention = pad_batch([(s, [0] * len(s)) for s in sequences[start: start + batch_size]], pad_id,
                                   model.device)
        scores += model(input_ids=ids, attention_mask=attention).logits.squeeze(-1).tolist()
    return scores
