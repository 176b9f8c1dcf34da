"""The named suites: which lm-eval tasks each scores, which metric of each counts, and what it stands for.

Plug-ins name suites of their own (bai_core/plugins.py; the demo family's `demo`, offline). `paper` is the lm-eval tasks closest to the nine
benchmarks of the BAI paper's Table 1: GPQA Diamond stands in for SuperGPQA (the same kind of test), and the three
columns with no lm-eval task at all are listed as missing rather than replaced by something unlike them. The
paper's "Overall" is the unweighted mean of each task's primary metric; the categories give the per-category means
beside it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SuiteTask:
    task: str        # lm-eval task or group name
    metric: str      # the primary metric as lm-eval keys it in results: "<metric>,<filter>"
    category: str    # knowledge / math / code / a plug-in's own
    stands_for: str  # the paper's column (or what it measures, outside the paper)
    runs_code: bool = False  # lm-eval executes the model's answers (needs confirm_run_unsafe_code)


SUITES: dict[str, tuple[SuiteTask, ...]] = {
    "paper": (
        SuiteTask("mmlu_pro", "exact_match,custom-extract", "knowledge", "MMLU-Pro"),
        SuiteTask("mmlu", "acc,none", "knowledge", "MMLU"),
        # SuperGPQA has no lm-eval task; GPQA Diamond is the same kind of test (graduate-level multiple choice)
        SuiteTask("gpqa_diamond_cot_zeroshot", "exact_match,flexible-extract", "knowledge",
                  "SuperGPQA (GPQA Diamond)"),
        SuiteTask("aime24", "exact_match,none", "math", "AIME24"),
        SuiteTask("minerva_math500", "math_verify,none", "math", "MATH (MATH-500)"),
        SuiteTask("mbpp_plus", "pass_at_1,none", "code", "MBPP+", runs_code=True),
    ),
}

# The paper's columns that no lm-eval 0.4 task measures: LLM-judged or hosted benchmarks.
MISSING_FROM_PAPER = ("LiveBench", "MixEval-Hard", "ArenaHard")

