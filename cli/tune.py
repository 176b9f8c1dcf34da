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
    from bai_core.io import tables
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
        from bai.flows.pipeline import PipelineFailed
        from bai.flows.tune import bai_tune

        try:
            return bai_tune(config)
        except PipelineFailed as e:
            if not args.json:
                print_stages(e.rows)
            raise

    result = run_flow(tune_flow, quiet=args.json, verbose=args.verbose)
    if args.json:
        print(json.dumps({key: result[key] for key in ("trials", "best", "start", "bai", "eval", "csv", "plot")}))
        return 0
    print_stages(result["stages"])
    print(tables.markdown(result["rows"], result["columns"]), end="")
    print(result["note"])
    print(f"M_bai: {result['bai']}\ntable: {result['csv']}\nplot: {result['plot']}")
    return 0
