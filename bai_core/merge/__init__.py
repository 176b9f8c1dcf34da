"""Merging checkpoints: the streaming linear engine and the two-stage BAI recipe on top of it."""

from bai_core.merge.bai import MANIFEST_FILE, MergeResult, bai_merge, merge_stage1, merge_stage2

__all__ = ["MANIFEST_FILE", "MergeResult", "bai_merge", "merge_stage1", "merge_stage2"]
