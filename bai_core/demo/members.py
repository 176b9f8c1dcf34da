"""The demo family's recipe: what each member starts from, what it reads, and how the family is scored.

Every module of the recipe (this one, arithmetic.py, corpus.py, evaluation.py, recipe.py, tokenizer.py, training.py,
and the values in sizes.py) is part of the family's recipe id (family.py): a change to their code makes cached and
shipped families stale. The code that stores, caches and reports a family lives elsewhere, so editing it does not.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path

from bai_core.demo.arithmetic import Problem, problems
from bai_core.demo.corpus import preference_pairs, pretraining_corpus
from bai_core.demo.evaluation import evaluate_lm, evaluate_merges, evaluate_reward
from bai_core.demo.recipe import FamilySize
from bai_core.demo.tokenizer import CHAT_TEMPLATE, write_char_tokenizer

LANGUAGE_MODELS = ("pretrained", "instruct", "reasoning")
MEMBERS = (*LANGUAGE_MODELS, "reward")
VOCAB_SIZE = 128  # the character tokenizer's 105 tokens, rounded up
Progress = Callable[[str, int, int], None]  # (phase, step, total steps)


def model_config(spec: FamilySize, vocab_size: int, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=spec.hidden, num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                       num_key_value_heads=spec.heads, intermediate_size=spec.intermediate, vocab_size=vocab_size,
                       max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                       pad_token_id=0, **extra)


def train_family(root: Path, spec: FamilySize, seed: int, progress: Progress) -> tuple[dict, list[dict]]:
    """Train the four members into `root/<member>` and score them and their merges on the eval split:
    (member -> metrics, merge rows). The caller fingerprints the folders."""
    from transformers import PreTrainedTokenizerFast
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # ours (or the Prefect artifact) shows progress; theirs is noise
    tokenizer_dir = root / ".tokenizer"
    write_char_tokenizer(tokenizer_dir, CHAT_TEMPLATE, vocab_size=VOCAB_SIZE)
    # local_files_only: transformers writes this load-time flag into every saved tokenizer_config.json, so leaving it
    # to HF_HUB_OFFLINE made the family's fingerprints depend on the environment. It is a local folder: say so.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir, local_files_only=True)
    shutil.rmtree(tokenizer_dir)
    train = problems("train", seed, spec.a_range, spec.b_range, spec.train_problems)
    trained = train_members(spec, tokenizer, train, seed, progress)
    for member, model in trained.items():
        model.save_pretrained(root / member, safe_serialization=True)
        tokenizer.save_pretrained(root / member)
    held_out = problems("eval", seed, spec.a_range, spec.b_range, spec.eval_problems)
    models = evaluate_members(trained, tokenizer, held_out, seed, progress)
    progress("evaluate merges", 0, 1)
    merges = evaluate_merges(root, tokenizer, held_out)
    progress("evaluate merges", 1, 1)
    return models, merges


def train_members(spec: FamilySize, tokenizer, train: list[Problem], seed: int, progress: Progress,
                  device: str = "cpu", members: tuple[str, ...] = MEMBERS, trained: dict | None = None) -> dict:
    """The models, trained in memory on `train` problems: member -> model (on `device`).

    `members` says which to train (with what they start from); `trained` holds members already trained, taken as
    they are (the recipe sweep: one base, many fine-tune variants). Each model starts from its own seed, so a member
    comes out the same whichever others are trained in the same call. It trains on the build's one torch thread
    whatever the caller's setting: on an Intel Xeon, a member retrained on the process's two threads came out other
    weights than the build's."""
    from bai_core.demo.training import fixed_threads

    with fixed_threads():
        return _train_members(spec, tokenizer, train, seed, progress, device, members, trained)


def _train_members(spec: FamilySize, tokenizer, train: list[Problem], seed: int, progress: Progress, device: str,
                   members: tuple[str, ...], trained: dict | None) -> dict:
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    from bai_core.demo.training import encode_chats, encode_texts, train_causal_lm, train_reward_model

    models = dict(trained or {})
    needed = set(members) | ({spec.reward_init} if "reward" in members else set())
    pad = tokenizer.pad_token_id
    pretraining = encode_texts(tokenizer, pretraining_corpus(train, seed, spec.corpus))

    def step_progress(phase: str):
        return lambda step, total, loss: progress(phase, step, total)

    if "pretrained" not in models:
        torch.manual_seed(seed)
        models["pretrained"] = LlamaForCausalLM(model_config(spec, VOCAB_SIZE)).to(device)
        train_causal_lm(models["pretrained"], pretraining, spec.pretrain, seed, pad, step_progress("pretrained"))
    for offset, (member, make_answer) in enumerate([("instruct", Problem.instruct_answer),
                                                    ("reasoning", Problem.reasoning_answer)], 1):
        if member in needed and member not in models:
            models[member] = copy.deepcopy(models["pretrained"])  # both fine-tunes start from the base's weights
            chats = encode_chats(tokenizer, [(p.question, make_answer(p)) for p in train])
            train_causal_lm(models[member], chats, getattr(spec, member), seed + offset, pad, step_progress(member),
                            replay=pretraining)
    if "reward" in members and "reward" not in models:
        torch.manual_seed(seed + 3)  # the score head's initial weights
        reward = LlamaForSequenceClassification(model_config(spec, VOCAB_SIZE, num_labels=1)).to(device)
        reward.model.load_state_dict(models[spec.reward_init].model.state_dict())  # the judge starts from a member
        train_reward_model(reward, preference_pairs(tokenizer, train, seed), spec.reward, seed + 3, pad,
                           step_progress("reward"))
        models["reward"] = reward
    return {member: models[member] for member in MEMBERS if member in models}


def evaluate_members(models: dict, tokenizer, held_out: list[Problem], seed: int, progress: Progress) -> dict:
    """member -> metrics on the held-out problems (preference pairs made from them for the reward model)."""
    report = {}
    for i, member in enumerate(LANGUAGE_MODELS):
        progress("evaluate", i, len(MEMBERS))
        report[member] = evaluate_lm(models[member], tokenizer, held_out)
    report["reward"] = evaluate_reward(models["reward"], preference_pairs(tokenizer, held_out, seed + 1),
                                       tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<think>"))
    progress("evaluate", len(MEMBERS), len(MEMBERS))
    return report
