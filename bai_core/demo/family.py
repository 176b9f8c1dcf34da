"""The demo model family, trained offline on CPU: pretrained, instruct and reasoning causal LMs and a reward model.

They relate the way the paper's do: one base (Llama architecture, ~1M parameters at `demo` size) trained on plain
task text; an instruct model fine-tuned from it to answer briefly; a reasoning model fine-tuned from it on a
programmatic teacher's step-by-step traces inside <think>...</think>; and a reward model (sequence classification,
initialized from a member, the instruct model at demo size, as InstructGPT starts its reward model from the SFT
model) trained on preference pairs. Same tokenizer, same architecture, same base: the merge engine merges them
directly. The fine-tunes stay near the base (a few hundred steps, low learning rate, pretraining text replayed), so
that their merges keep the skill the base already has, as the paper's models do.

What the reward model prefers: a correct final answer over a wrong one (same format, same prompt; the wrong answers
are near misses: off by 1, 2 or 10, with a trace that computes the wrong problem), and a complete answer over one cut
off before its final number. It does not look at length on purpose; how well it learned this is in the report.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bai_core.demo.arithmetic import Problem, problems
from bai_core.demo.corpus import preference_pairs, pretraining_corpus
from bai_core.demo.evaluation import evaluate_lm, evaluate_merges, evaluate_reward
from bai_core.demo.recipe import FamilySize
from bai_core.demo.sizes import SIZES
from bai_core.demo.tokenizer import CHAT_TEMPLATE, write_char_tokenizer
from bai_core.errors import BaiError
from bai_core.fingerprint import fingerprint_folder
from bai_core.io.atomic import AtomicFolder

FAMILY_VERSION = 3  # part of recipe_id, with the size's settings and the recipe's source code
LANGUAGE_MODELS = ("pretrained", "instruct", "reasoning")
MEMBERS = (*LANGUAGE_MODELS, "reward")
PHASES = (*MEMBERS, "evaluate", "evaluate merges")  # what a build reports progress on, in order
MANIFEST = "family.json"
VOCAB_SIZE = 128  # the character tokenizer's 105 tokens, rounded up
Progress = Callable[[str, int, int], None]  # (phase, step, total steps)


def recipe_id(size: str) -> str:
    """Identifies what a family of this size is made of: its settings and the code of the data and training recipe,
    so any change to them (not just a remembered version bump) makes cached families stale."""
    digest = hashlib.sha256(json.dumps({"version": FAMILY_VERSION, **asdict(SIZES[size])}, sort_keys=True).encode())
    for module in ("arithmetic.py", "corpus.py", "evaluation.py", "family.py", "recipe.py", "tokenizer.py",
                   "training.py"):
        digest.update((Path(__file__).parent / module).read_bytes())
    return f"v{FAMILY_VERSION}-{digest.hexdigest()[:10]}"


@dataclass
class FamilyReport:
    size: str
    seed: int
    recipe: str
    seconds: float
    models: dict[str, dict]  # member -> fingerprint, metrics
    merges: list[dict]  # M_sft and M_bai over the paper's grid, with the members' metrics

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
    from transformers import PreTrainedTokenizerFast
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # ours (or the Prefect artifact) shows progress; theirs is noise
    started = time.perf_counter()
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
    for member in MEMBERS:
        models[member] = {"fingerprint": fingerprint_folder(root / member), **models[member]}
    progress("evaluate merges", 0, 1)
    merges = evaluate_merges(root, tokenizer, held_out)
    progress("evaluate merges", 1, 1)
    return FamilyReport(size, seed, recipe_id(size), round(time.perf_counter() - started, 1), models, merges)


def train_members(spec: FamilySize, tokenizer, train: list[Problem], seed: int, progress: Progress,
                  device: str = "cpu", members: tuple[str, ...] = MEMBERS, trained: dict | None = None) -> dict:
    """The models, trained in memory on `train` problems: member -> model (on `device`).

    `members` says which to train (with what they start from); `trained` holds members already trained, taken as
    they are (the recipe sweep: one base, many fine-tune variants). Each model starts from its own seed, so a member
    comes out the same whichever others are trained in the same call."""
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
        models["pretrained"] = LlamaForCausalLM(_config(spec, VOCAB_SIZE)).to(device)
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
        reward = LlamaForSequenceClassification(_config(spec, VOCAB_SIZE, num_labels=1)).to(device)
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


def format_report(report: FamilyReport) -> str:
    """The family as a table: what each model, and each merge of the grid, does on held-out problems."""
    lines = [f"demo family: size {report.size}, seed {report.seed}, recipe {report.recipe}, "
             f"trained in {report.seconds:.0f} s",
             f"{'model':<18}{'accuracy':>9}{'think':>7}{'answer tokens':>15}{'finished':>10}{'plain-text acc':>16}"
             "  fingerprint"]
    for member in LANGUAGE_MODELS:
        m = report.models[member]
        lines.append(f"{member:<18}{m['accuracy']:>9.1%}{m['think_rate']:>7.0%}{m['mean_answer_tokens']:>15.1f}"
                     f"{m['finished_rate']:>10.0%}{m['plain_text_accuracy']:>16.1%}  {m['fingerprint'][:19]}")
    for row in report.merges:
        name = (f"M_sft (w {row['instruct_weight']:g})" if row["alpha"] is None
                else f"M_bai (alpha {row['alpha']:g})")
        lines.append(f"{name:<18}{row['accuracy']:>9.1%}{row['think_rate']:>7.0%}{row['mean_answer_tokens']:>15.1f}"
                     f"{row['finished_rate']:>10.0%}")
    r = report.models["reward"]
    lines.append(f"{'reward':<18}pairwise accuracy {r['pairwise_accuracy']:.1%} on held-out preference pairs "
                 f"(brief answers {r['brief_pairs_accuracy']:.1%}, reasoning {r['reasoning_pairs_accuracy']:.1%}; "
                 f"chosen {r['mean_chosen_score']:+.2f} vs rejected {r['mean_rejected_score']:+.2f})  "
                 f"{r['fingerprint'][:19]}")
    return "\n".join(lines)
