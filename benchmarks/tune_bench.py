"""`bai tune` on the shipped demo family: the study (TPE, a budget of trials) against the full 5 x 5 grid of
(w, alpha), both scored on the dev split by the same cached trials, and the eval-split score of each one's pick
beside the paper's default merge (w 0.5, alpha 0.5). Without RL pilots (not built yet): the value is the merge's
score before RL.

    .venv/bin/python benchmarks/tune_bench.py --trials 16 --store /tmp/tune-bench

Trials are cached in the store: a second run reads them back (rerun with a fresh store to time it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--store", default=str(Path(tempfile.gettempdir()) / "tune-bench"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from bai_core import plan
    from bai_core.artifact_stage import run_stage
    from bai_core.config import load_pipeline_config
    from bai_core.evaluation.stage import EvaluateStage, ScoredModel, suite_metadata
    from bai_core.fingerprint import fingerprint_folder
    from bai_core.merge import merge
    from bai_core.merge.config import MergeJob
    from bai_core.sources import fetch_checkpoint, local_model
    from bai_core.tune.config import TuneSettings
    from bai_core.tune.study import Study, dev_settings
    from bai_core.tune.trial import TrialStage

    root = Path(__file__).resolve().parents[1]
    config = load_pipeline_config(root / "configs" / "demo.yaml", [f"storage.uri={args.store}"])
    config = config.model_copy(update={"tune": TuneSettings(trials=args.trials, seed=args.seed)})
    storage = config.storage
    refs = {role: fetch_checkpoint(role, getattr(config.models, role), storage)
            for role in ("pretrained", "instruct", "reasoning")}
    sources = plan.checkpoint_sources(config)
    dev = dev_settings(config)
    dev_metadata = suite_metadata(dev, sources)

    def trial(w: float, alpha: float) -> float:
        result, _ = run_stage(TrialStage(w, alpha, refs, config.merge, config.tune, dev, dev_metadata, storage))
        return result.value

    started = time.perf_counter()
    grid = {(w, alpha): trial(w, alpha) for w in GRID for alpha in GRID}
    grid_seconds = time.perf_counter() - started
    started = time.perf_counter()
    study = Study(config.tune, {"w": 0.5, "alpha": 0.5})
    searched = {}
    for _ in range(args.trials):
        point = study.ask()
        searched[(point.w, point.alpha)] = trial(point.w, point.alpha)
        study.tell(point, searched[(point.w, point.alpha)])
    study_seconds = time.perf_counter() - started

    eval_metadata = suite_metadata(config.evaluate, sources)
    paths = {role: local_model(ref.source, ref.fingerprint, storage) for role, ref in refs.items()}

    def eval_score(w: float, alpha: float) -> float:
        with tempfile.TemporaryDirectory() as temporary:
            output = Path(temporary) / "bai"
            merge(MergeJob(**paths, output=output, instruct_weight=w, alpha=alpha))
            model = ScoredModel(name="pick", source=str(output), fingerprint=fingerprint_folder(output))
            ref, _ = run_stage(EvaluateStage(model, config.evaluate, storage, eval_metadata))
        return ref.overall

    rows = []
    for name, values, seconds in (("5 x 5 grid", grid, grid_seconds), (f"TPE, {args.trials} trials", searched,
                                                                       study_seconds)):
        (w, alpha), value = max(values.items(), key=lambda item: item[1])
        rows.append((name, len(values), f"{seconds:.0f} s", f"{value:.3f}", f"w {w:.3f}, alpha {alpha:.3f}",
                     f"{eval_score(w, alpha):.3f}"))
    rows.append(("paper's default", 1, "-", f"{grid[(0.5, 0.5)]:.3f}", "w 0.500, alpha 0.500",
                 f"{eval_score(0.5, 0.5):.3f}"))
    print("| search | merges scored | time | best dev value | pick | eval split, the pick |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print("\ndev values of the grid (rows w, columns alpha " + ", ".join(f"{a:g}" for a in GRID) + "):")
    for w in GRID:
        print(f"  w {w:<4g} " + " ".join(f"{grid[(w, alpha)]:.3f}" for alpha in GRID))


if __name__ == "__main__":
    main()
