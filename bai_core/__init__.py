"""bai: Balanced Actor Initialization for stable RLHF of distillation-based reasoning models.

The library: merge, checkpoint I/O, fingerprints (and, later, storage, training, detectors, evaluation, reports).
It never imports Prefect; the `tasks/` and `flows/` packages wrap it for orchestration.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bai")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
