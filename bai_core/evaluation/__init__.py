"""Evaluation: benchmark scoring is lm-evaluation-harness itself; bai ships task definitions, not scoring code.

`SUITES_DIR` is an lm-eval `include_path`: each folder under it holds declarative task YAML (and, where a
declaration cannot say it, a few lines of Python that lm-eval loads by path, as its own tasks do).
"""

from pathlib import Path

SUITES_DIR = Path(__file__).parent / "suites"
