"""Fixed weights scored under CPU-kernel settings: do a family report's figures move with the processor's kernels?

For each setting (family_builds.SETTINGS), a process of its own scores a built family's members and the grid's
merges on the family's eval split the way the build's report does (`evaluate_lm`, greedy), on the process's default
threads, and prints which figures differ from the report's and how many answers changed. It scores; it chooses
nothing.

    .venv/bin/python research/cpu-portability/scores_under_kernels.py FAMILY_DIR [--settings NAME,...] [--out rows.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from family_builds import SETTINGS  # noqa: E402


def score(family: Path) -> dict:
    """member or merge -> (metrics, answers), scored here."""
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from bai_core.demo import evaluation
    from bai_core.demo.arithmetic import problems
    from bai_core.demo.sizes import SIZES

    meta = json.loads((family / "family.json").read_text())
    spec = SIZES[meta["size"]]
    items = problems("eval", meta["seed"], spec.a_range, spec.b_range, spec.eval_problems)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(family / "reasoning")
    answers: dict[str, list] = {}
    original = evaluation._generate

    def recording(name):
        def generate(model, tokenizer, prompts, max_new_tokens):
            out = original(model, tokenizer, prompts, max_new_tokens)
            answers.setdefault(name, []).extend(text for text, _, _ in out)
            return out
        return generate

    figures = {}
    for member in ("pretrained", "instruct", "reasoning"):
        evaluation._generate = recording(member)
        figures[member] = evaluation.evaluate_lm(LlamaForCausalLM.from_pretrained(family / member), tokenizer, items)
    evaluation._generate = recording("merges")
    for row in evaluation.evaluate_merges(family, tokenizer, items):
        figures[f"{row['model']}@{row['alpha']}"] = {k: row[k] for k in ("accuracy", "think_rate",
                                                                            "mean_answer_tokens", "finished_rate")}
    evaluation._generate = original
    return {"figures": figures, "answers": answers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", type=Path)
    parser.add_argument("--settings", default="default,aten-default,mkl-cbwr-compatible,omp-3-threads,portable")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("scores_under_kernels.jsonl"))
    parser.add_argument("--here", action="store_true", help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args()
    if args.here:
        print(json.dumps(score(args.family)))
        return
    report = json.loads((args.family / "family.json").read_text())
    expected = {m: {k: v for k, v in report["models"][m].items() if k != "fingerprint"}
                for m in ("pretrained", "instruct", "reasoning")}
    expected.update({f"{r['model']}@{r['alpha']}": {k: r[k] for k in ("accuracy", "think_rate",
                                                                       "mean_answer_tokens", "finished_rate")}
                     for r in report["merges"]})
    reference = None
    for name in args.settings.split(","):
        proc = subprocess.run([sys.executable, __file__, str(args.family), "--here"], capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", **SETTINGS[name]}, timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        result = json.loads(proc.stdout.splitlines()[-1])
        reference = reference or result["answers"]
        moved = {model: (expected[model], got) for model, got in result["figures"].items() if got != expected[model]}
        changed = {model: sum(a != b for a, b in zip(texts, reference[model]))
                   for model, texts in result["answers"].items()}
        row = {"family": str(args.family), "recipe": report["recipe"], "setting": name, "env": SETTINGS[name],
               "figures_that_moved": moved, "answers_changed_vs_first_setting": changed}
        with args.out.open("a") as out:
            out.write(json.dumps(row) + "\n")
        print(name, "moved:", moved or "none", "answers changed vs first setting:", changed, flush=True)


if __name__ == "__main__":
    main()
