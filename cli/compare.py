"""`bai compare`: the paper's Table 1 for your models. One pipeline run per row (Paradigms 1-3, BAI and two
ablations; see bai_core/experiments.py), all with the config's train and evaluate settings, as a Prefect flow."""

from __future__ import annotations

import json

from bai.cli.paths import local_file
from bai.cli.run import add_config_arguments, add_fanout_arguments


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare BAI with Paradigms 1-3 (and RL from pretrained / M_sft): same RL budget, same lm-eval suite",
        description="Rows: Paradigm 1 (RL from instruct), Paradigm 2 (reasoning, no RL), Paradigm 3 (RL from "
        "reasoning), BAI (RL from M_bai), and the ablations RL from pretrained and RL from M_sft. Each row is a "
        "pipeline run with the config's `train:` settings (its init replaced) and scored with its `evaluate:` "
        "suite; merges, RL runs and scores are cached. Prints the table; publishes it (CSV, markdown) and a plot "
        "of every RL run's length and reward curves to the store and the Prefect UI.",
    )
    add_fanout_arguments(p, "rows")
    add_config_arguments(p, "train.steps=40", "print the rows and file URIs as one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from bai.cli.run import fanout_of, run_flow
    from bai_core import experiments
    from bai_core.config import load_pipeline_config
    from bai_core.io import tables

    config = load_pipeline_config(local_file(args.config), args.overrides)
    fanout = fanout_of(args)  # a cluster that does not answer: one line, before any flow runs
    experiments.comparison_runs(config)  # a config that cannot make the table fails here, before any flow runs

    def compare(api_url: str) -> dict:
        from bai.flows.compare import bai_compare

        return bai_compare(config, fanout=fanout)

    result = run_flow(compare, quiet=args.json, verbose=args.verbose)
    if args.json:
        print(json.dumps(result))
        return 0
    print(tables.markdown(result["rows"], result["columns"]), end="")
    print(f"table: {result['csv']}\nplot: {result['plot']}")
    return 0
