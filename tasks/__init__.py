"""Thin Prefect tasks over `bai_core`, installed as `bai.tasks`: each stage's outcome as its state (stage.py), retries,
progress and table artifacts, the run's log."""

from bai.tasks.artifacts import install_log_filter

install_log_filter()
