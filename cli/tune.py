"""`bai tune`: search the merge weights (w, alpha) with an Optuna study, each trial a merge scored on a dev split
(never the eval split); merge the best as M_bai and, when the config scores, score it once on the eval split."""

from __future__ import annotations

import json

from bai.cli.paths import local_file
from bai.cli.run import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tune",
        help="search w and alpha for the best merge on a dev split; publish it as M_bai",
        description="An Optuna study over the merge weights (the config's tune: section; default: w and alpha both "
        "searched in [0, 1], 16 trials, TPE). Each trial merges the three checkpoints at its weights and scores the "
        "merge on the dev split of the config's evaluate suite (demo -> demo-dev); trials are cached, so a rerun or "
        "a study resumed after a stop continues where it was. The best weights are merged and published as M_bai "
        "(no RL: `bai run` with the same tune: section trains from it), and scored once on the eval split.",
    )
    p.add_argument("--trials", type=int, help="trials of the study (default: tune.trials, 16)")
    add_config_arguments(p, "tune.alpha=0.5", "print the trials, the best weights and M_bai as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from bai.cli.run import print_stages, run_flow
    from bai_core.config import load_pipeline_config
    from bai_core.settings import validated
    from bai_core.tune.config import TuneSettings
    from bai_core.tune.study import dev_settings

    config = load_pipeline_config(local_file(args.config), args.overrides)
    tune = (config.tune or TuneSettings()).model_dump(mode="json")
    if args.trials is not None:
        tune["trials"] = args.trials
    evaluate = config.evaluate.model_dump(mode="json") | {"models": ["bai"]} if config.evaluate else None
    config = validated(type(config), **{**config.model_dump(mode="json"), "tune": tune, "train": None,
                                        "evaluate": evaluate})
    dev_settings(config)  # a missing dev split or one that is the eval split: one line, before any flow runs

    def tune_flow(api_url: str) -> dict:
        from bai.flows.pipeline import PipelineFailed, bai_pipeline

        try:
            return bai_pipeline(config)
        except PipelineFailed as e:
            if not args.json:
                print_stages(e.rows)
            raise

    summary = run_flow(tune_flow, quiet=args.json, verbose=args.verbose)
    best = {"w": summary["merge"]["instruct_weight"], "alpha": summary["merge"]["alpha"]}
    if args.json:
        print(json.dumps({"trials": summary["trials"], "best": best, "bai": summary["outputs"]["bai"],
                          "scores": summary["outputs"].get("scores", {})}))
        return 0
    print_stages(summary["stages"])
    print(f"best: w {best['w']:.3f}, alpha {best['alpha']:.3f} "
          f"(dev value {max(t['value'] for t in summary['trials']):.3f} over {len(summary['trials'])} trials)")
    print(f"M_bai: {summary['outputs']['bai']}")
    for scores in summary["outputs"].get("scores", {}).values():
        print(f"eval split: overall {scores['overall']:.3f}: {scores['uri']}")
    return 0
