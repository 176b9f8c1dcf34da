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

import ast
import hashlib
import io
import json
import os
import platform
import time
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

from bai_core.demo.members import LANGUAGE_MODELS, MEMBERS, Progress
from bai_core.demo.sizes import SIZES
from bai_core.errors import BaiError
from bai_core.fingerprint import fingerprint_folder
from bai_core.io.atomic import AtomicFolder

__all__ = ["LANGUAGE_MODELS", "MEMBERS", "SIZES", "FamilyReport", "build_family", "cached_family", "format_report",
           "recipe_id"]

FAMILY_VERSION = 4  # part of recipe_id, with the size's settings and the recipe's code (4: pinned kernels)
PHASES = (*MEMBERS, "evaluate", "evaluate merges")  # what a build reports progress on, in order
MANIFEST = "family.json"
# The modules whose code decides a family's weights and report (members.py names them too).
RECIPE_MODULES = ("arithmetic.py", "corpus.py", "evaluation.py", "members.py", "recipe.py", "tokenizer.py",
                  "training.py")


def recipe_id(size: str) -> str:
    """Identifies what a family of this size is made of: its settings and the code of the data and training recipe,
    so any change to them (not just a remembered version bump) makes cached and shipped families stale.

    The code is hashed without its comments, docstrings and blank lines: rewording those changes no weight, so it
    changes no id; a changed statement, name or constant does (and so does re-wrapping a line: it errs on the safe
    side)."""
    digest = hashlib.sha256(json.dumps({"version": FAMILY_VERSION, **asdict(SIZES[size])}, sort_keys=True).encode())
    for module in RECIPE_MODULES:
        digest.update(code_without_comments((Path(__file__).parent / module).read_text()).encode())
    return f"v{FAMILY_VERSION}-{digest.hexdigest()[:10]}"


def code_without_comments(source: str) -> str:
    """`source` with its comments and docstrings blanked out, trailing spaces and blank lines dropped. Where they are
    comes from tokenize and from ast's positions, which every supported Python reports alike (a dump of the syntax
    tree itself differs between Python versions, and would make the shipped family stale on another one)."""
    lines = source.splitlines()
    spans = [(*token.start, *token.end) for token in tokenize.generate_tokens(io.StringIO(source).readline)
             if token.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docstring = body[0]  # ast counts columns in UTF-8 bytes; the lines are characters
            spans.append((docstring.lineno, _chars(lines[docstring.lineno - 1], docstring.col_offset),
                          docstring.end_lineno, _chars(lines[docstring.end_lineno - 1], docstring.end_col_offset)))
    kept = [list(line) for line in lines]
    for first_line, first_column, last_line, last_column in spans:
        for number in range(first_line, last_line + 1):
            line = kept[number - 1]
            start = first_column if number == first_line else 0
            end = last_column if number == last_line else len(line)
            line[start:end] = " " * (end - start)
    return "\n".join(text for text in ("".join(line).rstrip() for line in kept) if text)


def _chars(line: str, utf8_offset: int) -> int:
    return len(line.encode()[:utf8_offset].decode(errors="ignore"))


def machine() -> dict:
    """What a family was trained on: the processor, torch and the kernels it computed with (ATen's capability as
    torch reports it, and the switches the build pinned)."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    from bai_core.demo.training import TRAINING_KERNELS, TRAINING_THREADS

    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": TRAINING_THREADS,
            "system": platform.system(), "machine": platform.machine(),
            "kernels": {"aten": torch.backends.cpu.get_cpu_capability(), **TRAINING_KERNELS}}


@dataclass
class FamilyReport:
    size: str
    seed: int
    recipe: str
    seconds: float
    models: dict[str, dict]  # member -> fingerprint, metrics
    merges: list[dict]  # M_sft and M_bai over the paper's grid, with the members' metrics
    built_on: dict | None = None  # machine(): where the weights were trained (absent in older reports)

    def to_json(self) -> dict:
        return asdict(self)


def build_family(output: Path, size: str = "demo", seed: int = 0, overwrite: bool = False,
                 progress: Progress | None = None) -> FamilyReport:
    """Train the family into `output` (atomically), or return the report of the one already there.

    The training computes with the builds' pinned kernels (`TRAINING_KERNELS`) on one thread, so that a seed gives
    the same family on any x86 processor: here, when this process was started on them, else in a child process
    started on them (bai_core/demo/builder.py)."""
    if size not in SIZES:
        raise BaiError(f"unknown demo size {size!r} (known: {', '.join(SIZES)})")
    if seed < 0:
        raise BaiError(f"seed must be >= 0, got {seed}")
    existing = cached_family(output, size, seed)
    if existing is not None:
        return existing
    AtomicFolder.check_target(output, overwrite)
    from bai_core.demo.builder import build_in_pinned_process, kernels_pinned  # torch: only with training to do

    if not kernels_pinned():
        build_in_pinned_process(output, size, seed, overwrite, progress or (lambda *_: None))
        report = cached_family(output, size, seed)
        if report is None:
            raise BaiError(f"{output}: the build ended without an intact {size} family in it")
        return report
    from bai_core.demo.members import train_family
    from bai_core.demo.training import fixed_threads

    with AtomicFolder(output, overwrite=overwrite) as staging:
        with fixed_threads():
            started = time.perf_counter()
            models, merges = train_family(staging.path, SIZES[size], seed, progress or (lambda *_: None))
            for member in MEMBERS:
                models[member] = {"fingerprint": fingerprint_folder(staging.path / member), **models[member]}
            report = FamilyReport(size, seed, recipe_id(size), round(time.perf_counter() - started, 1), models,
                                  merges, machine())
        (staging.path / MANIFEST).write_text(json.dumps(report.to_json(), indent=2) + "\n")
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
