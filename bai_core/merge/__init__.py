"""Merging checkpoints: the streaming linear engine (engine.py), the two-stage BAI recipe on top of it
(two_stage.py), its settings (config.py), and the two merges as cached pipeline stages (stage.py)."""

from bai_core.merge.two_stage import MANIFEST_FILE, MergeResult, merge, merge_two_stages

__all__ = ["MANIFEST_FILE", "MergeResult", "merge", "merge_two_stages"]
