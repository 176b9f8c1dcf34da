"""`bai tune` on the shipped demo family: the study (TPE, a budget of trials) against the full 5 x 5 grid of
(w, alpha), without and with RL pilots, all scored on the dev split by the same cached trials and pilots; then the
eval-split score of each one's pick (its M_bai, and the actor after its longest pilot) beside the paper's default
merge (w 0.5, alpha 0.5).

    .venv/bin/python benchmarks/tune_bench.py --trials 16 --store /tmp/tune-bench

Without pilots a trial's value is its merge's dev score; with them, the dev score of the actor after the last rung
it reached (10, 20, 40 steps of configs/demo.yaml's 150-step GRPO run; successive halving keeps 1 in 2). The grid
runs every rung for every point (no pruning). Trials and pilots are cached in the store: a second run reads them
back (rerun with a fresh store to time it). `--full-rl` also trains the whole 150-step run from each pick.
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
    parser.add_argument("--full-rl", action="store_true", help="train the config's whole RL run from each pick")
    args = parser.parse_args()

    from bai_core import plan
    from bai_core.artifact_stage import run_stage
    from bai_core.config import load_pipeline_config
    from bai_core.evaluation.stage import EvaluateStage, ScoredModel, suite_metadata
    from bai_core.fingerprint import fingerprint_folder
    from bai_core.layout import actor_folder
    from bai_core.rl.stage import prepare_train
    from bai_core.sources import fetch_checkpoint
    from bai_core.tune.pilot import pilot_settings, run_pilot
    from bai_core.tune.study import dev_settings, run_study
    from bai_core.tune.trial import TrialStage, merged_trial

    root = Path(__file__).resolve().parents[1]
    base = load_pipeline_config(root / "configs" / "demo.yaml", [f"storage.uri={args.store}"])
    storage = base.storage

    def with_tune(pilots: bool):
        tune = {"trials": args.trials, "seed": args.seed, **({"pilots": {}} if pilots else {})}
        return type(base).model_validate({**base.model_dump(mode="json"), "tune": tune})

    config = with_tune(pilots=True)
    refs = {role: fetch_checkpoint(role, getattr(config.models, role), storage)
            for role in ("pretrained", "instruct", "reasoning")}
    sources = plan.checkpoint_sources(config)
    dev = dev_settings(config)
    dev_metadata = suite_metadata(dev, sources)
    train_inputs = prepare_train(pilot_settings(config.tune), refs, config.merge, storage)
    rungs = config.tune.pilots.rungs

    def trial(w: float, alpha: float) -> dict:
        result, _ = run_stage(TrialStage(w, alpha, refs, config.merge, config.tune, dev, dev_metadata, storage))
        return result.model_dump(mode="json")

    def pilot(rung: int, of: dict, earlier: dict | None) -> dict:
        result, _ = run_pilot(rung, of, earlier, refs, config.merge, config.tune, train_inputs, dev, dev_metadata,
                              storage)
        return result.model_dump(mode="json")

    def every_rung(of: dict) -> list[dict]:
        pilots = []
        for rung in range(1, rungs + 1):
            pilots.append(pilot(rung, of, pilots[-1] if pilots else None))
        return pilots

    searches = []
    started = time.perf_counter()
    grid = {(w, alpha): trial(w, alpha) for w in GRID for alpha in GRID}
    searches.append(_search("5 x 5 grid", grid, {}, time.perf_counter() - started))
    for pilots in (False, True):
        settings = with_tune(pilots).tune
        started = time.perf_counter()
        study = run_study(settings, {"w": 0.5, "alpha": 0.5},
                          lambda points: [("", 0.0, trial(p.w, p.alpha)) for p in points],
                          lambda rung, items: [("", 0.0, pilot(rung, of, earlier)) for _, of, earlier in items])
        tpe = {(o["result"]["w"], o["result"]["alpha"]): o["result"] for o in study["outcomes"]}
        ran = {(o["result"]["w"], o["result"]["alpha"]): o["pilots"] for o in study["outcomes"] if o["pilots"]}
        best = study["best"]
        searches.append(_search(f"TPE, {args.trials} trials" + (", pilots (halving)" if pilots else ""), tpe, ran,
                                time.perf_counter() - started, (best["w"], best["alpha"])))
        if not pilots:
            continue
        trace = [f"  trial {o['trial']:2d}  w {o['result']['w']:.3f} alpha {o['result']['alpha']:.3f}  "
                 + "  ".join(f"{v:.3f}" for v in [o["result"]["value"], *(p["value"] for p in o["pilots"])])
                 + ("" if o["pruned_at"] is None else f"  pruned at rung {o['pruned_at']}")
                 for o in study["outcomes"]]
        started = time.perf_counter()
        grid_pilots = {point: every_rung(result) for point, result in grid.items()}
        searches.append(_search("5 x 5 grid, pilots (every rung)", grid, grid_pilots, time.perf_counter() - started))

    eval_metadata = suite_metadata(config.evaluate, sources)

    def eval_merge(w: float, alpha: float) -> float:
        with merged_trial(w, alpha, refs, config.merge, storage) as output:
            model = ScoredModel(name="pick", source=str(output), fingerprint=fingerprint_folder(output))
            ref, _ = run_stage(EvaluateStage(model, config.evaluate, storage, eval_metadata))
        return ref.overall

    def eval_actor(last: dict) -> float:
        key = last["train_key"]
        model = ScoredModel(name="pilot", source=last["train"] + "/actor", fingerprint=_actor_fingerprint(
            storage, key), store_key=actor_folder(key))
        ref, _ = run_stage(EvaluateStage(model, config.evaluate, storage, eval_metadata))
        return ref.overall

    steps = config.tune.pilots.steps_at(rungs)
    default = (0.5, 0.5)
    searches.append({"name": "paper's default", "merges": 1, "steps": "-", "seconds": None,
                     "value": grid[default]["value"], "pick": default,
                     "pilot_value": every_rung(grid[default])[-1]["value"]})
    print(f"| search | merges scored | RL pilot steps | time | best dev value | pick | eval: pick's M_bai | "
          f"eval: pick after {steps} steps |" + (" eval: after the full run |" if args.full_rl else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if args.full_rl else ""))
    for search in searches:
        w, alpha = search["pick"]
        last = every_rung(trial(w, alpha))[-1]  # cached for every pick a pilot study made; trained for the others
        cells = [search["name"], search["merges"], search["steps"],
                 "-" if search["seconds"] is None else f"{search['seconds']:.0f} s",
                 f"{search['value']:.3f}" + (f" (pilot {search['pilot_value']:.3f})" if "pilot_value" in search
                                             else ""),
                 f"w {w:.3f}, alpha {alpha:.3f}", f"{eval_merge(w, alpha):.3f}", f"{eval_actor(last):.3f}"]
        if args.full_rl:
            cells.append(f"{_full_run(base, w, alpha):.3f}")
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    print("\nthe TPE study with pilots, each trial's value at rung 0 (the merge), 1, 2, 3 (10, 20, 40 steps):")
    print("\n".join(trace))
    print("\ndev values of the grid (rows w, columns alpha " + ", ".join(f"{a:g}" for a in GRID) + "), before RL "
          f"and after {steps} pilot steps:")
    for w in GRID:
        print(f"  w {w:<4g} " + " ".join(f"{grid[(w, alpha)]['value']:.3f}" for alpha in GRID) + "   |  "
              + " ".join(f"{every_rung(grid[(w, alpha)])[-1]['value']:.3f}" for alpha in GRID))


def _search(name: str, trials: dict, pilots: dict, seconds: float, best: tuple | None = None) -> dict:
    """A search's row: its pick (the given best, else the best value: the last rung's with pilots)."""
    values = {point: (pilots[point][-1]["value"] if point in pilots else result["value"])
              for point, result in trials.items() if not pilots or point in pilots}
    pick = best or max(values, key=values.get)
    steps = sum(runs[-1]["steps"] for runs in pilots.values())
    return {"name": name, "merges": len(trials), "steps": steps, "seconds": seconds, "value": values[pick],
            "pick": pick}


def _actor_fingerprint(storage, key: str) -> str:
    from bai_core.layout import actor_folder
    from bai_core.storage import open_store

    return open_store(storage).find(actor_folder(key))["fingerprint"]


def _full_run(base, w: float, alpha: float) -> float:
    """The config's whole pipeline (merge, 150 RL steps, eval) from (w, alpha): the actor's eval score."""
    from bai.flows.pipeline import bai_pipeline

    point = type(base).model_validate({**base.model_dump(mode="json"), "name": f"bench-w{w:g}-a{alpha:g}",
                                       "merge": {**base.merge.model_dump(mode="json"), "instruct_weight": w,
                                                 "alpha": alpha}})
    return bai_pipeline(point)["outputs"]["scores"]["actor"]["overall"]


if __name__ == "__main__":
    main()
