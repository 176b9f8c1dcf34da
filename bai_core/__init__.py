"""bai: Balanced Actor Initialization for stable RLHF of distillation-based reasoning models.

The library: checkpoint I/O and sources, the artifact store and the one stage protocol, the merge, RL training and
its detectors, lm-eval scoring, the demo family, reports. It never imports Prefect, nor the packages that stand on
it: `bai.tasks` and `bai.flows` (Prefect) and `bai.cli` (the `bai` command).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bai")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
