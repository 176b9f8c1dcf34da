"""Thin Prefect tasks over `bai_core`: cache policy, retries, progress and table artifacts, result storage."""

from tasks.artifacts import install_log_filter

install_log_filter()
