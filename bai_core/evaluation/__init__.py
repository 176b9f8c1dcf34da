"""Evaluation: benchmark scoring is lm-evaluation-harness itself; bai ships task definitions, not scoring code.

Task definitions are declarative lm-eval YAML in a plug-in's folder (an lm-eval `include_path`: the demo family's is
bai_core/demo/suites/), with, where a declaration cannot say it, a few lines of Python that lm-eval loads by path, as
its own tasks do.
"""
