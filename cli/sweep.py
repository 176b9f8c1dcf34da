"""`bai sweep`: the paper's ratio ablation (Table 2) for your models. Stage 2 at each alpha (stage 1 once), each
M_bai scored with the config's `evaluate:` suite, or with --rl-steps a short RL pilot per alpha scored after it."""

from __future__ import annotations

import json

from bai.cli.paths import local_file
from bai.cli.run import add_config_arguments, add_fanout_arguments


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="sweep alpha: merge, (optionally) a short RL pilot, and score each point; recommend an alpha",
        description="One pipeline run per alpha, as a Prefect flow: stage 1 is merged once, stage 2 per alpha, and "
        "each M_bai is scored with the config's evaluate: suite (the demo suite when the config has none). With "
        "--rl-steps N, each alpha also gets an RL pilot of N steps with the config's train: settings, watched by "
        "the detectors, and its actor is scored. The table names the recommended alpha: the best --objective "
        "among the points without a detected length collapse.",
    )
    p.add_argument("--alphas", default="0.1,0.2,0.5,0.7,0.9",
                   help="values of alpha, comma-separated (default the paper's 0.1,0.2,0.5,0.7,0.9)")
    p.add_argument("--rl-steps", type=int, help="an RL pilot of this many steps per alpha (default: no RL)")
    p.add_argument("--objective", default="overall",
                   help="what the recommendation maximizes: overall, or one task's score (default overall)")
    add_fanout_arguments(p, "points")
    add_config_arguments(p, "evaluate.limit=50", "print the rows, the recommendation and file URIs as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from bai.cli.run import fanout_of, run_flow
    from bai_core import experiments
    from bai_core.config import load_pipeline_config
    from bai_core.evaluation.config import EvaluateSettings
    from bai_core.io import tables

    config = load_pipeline_config(local_file(args.config), args.overrides)
    fanout = fanout_of(args)  # a cluster that does not answer: one line, before any flow runs
    alphas = experiments.parse_alphas(args.alphas)
    if config.evaluate is None:  # the CLI's sweep scores; the flow alone may just merge
        config = config.model_copy(update={"evaluate": EvaluateSettings()})
    experiments.sweep_runs(config, alphas, args.rl_steps)  # bad steps or configs fail here, before any flow runs
    experiments.check_objective(config, args.objective)

    def sweep(api_url: str) -> dict:
        from bai.flows.sweep import bai_sweep

        return bai_sweep(config, alphas, args.rl_steps, args.objective, fanout=fanout)

    result = run_flow(sweep, quiet=args.json, verbose=args.verbose)
    if args.json:
        print(json.dumps(result))
        return 0
    print(tables.markdown(result["rows"], [c for c in result["columns"] if c not in ("M_bai",)]), end="")
    if result["recommended"] is not None:
        print(f"recommended alpha: {result['recommended']:g} (best {args.objective} without a length collapse)")
    print(f"table: {result['csv']}\nplot: {result['plot']}")
    return 0
