"""`bai run`: the BAI pipeline as a Prefect flow, from a YAML config.

The flow runs in this process; the Prefect API is the configured one or a local server kept between runs (see
prefect_api.py). Progress goes to stderr (a bar, or plain lines when stderr is not a terminal), the stage table or
the --json summary to stdout. A failure of Prefect's own machinery is one line, like any user error.
"""

from __future__ import annotations

import json
import os
import sys

from bai.cli import prefect_api
from bai.cli.display import make_display
from bai.cli.paths import local_file, path_argument
from bai_core import progress
from bai_core.errors import BaiError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the BAI pipeline (Prefect flow) from a YAML config",
        description="Fetch the three checkpoints, merge stage 1 and stage 2, (with `train:` in the config) RL-train "
        "the actor from the merge, and (with `evaluate:`) score models with lm-eval, as cached Prefect tasks; "
        "publish the artifacts. Uses the Prefect API in PREFECT_API_URL, or a local server that bai starts once "
        "and keeps.",
    )
    add_config_arguments(p, "merge.alpha=0.2", "print the run summary as one JSON object on stdout")
    p.set_defaults(func=run)


def add_config_arguments(p, example: str, json_help: str) -> None:
    """What every verb that runs a flow from a pipeline config takes: the config, overrides, --json, --verbose."""
    p.add_argument("config", type=path_argument,
                   help="pipeline config (YAML), e.g. configs/demo.yaml (a path, or a file:// or s3:// URI)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config value, e.g. --set {example} (repeatable)")
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--verbose", action="store_true", help="show Prefect's own log lines and full tracebacks")


def add_fanout_arguments(p, what: str) -> None:
    """--workers and --cluster: run the verb's independent pipeline runs at once on Dask (bai_core/fanout.py)."""
    p.add_argument("--workers", type=int, default=1,
                   help=f"{what} at once (default 1: one after another): above 1, on a Dask LocalCluster of that "
                   "many processes here, or that many at a time on --cluster")
    p.add_argument("--cluster", metavar="ADDRESS", help=f"a Dask scheduler (tcp://host:8786) to run the {what} on")


def fanout_of(args):
    """The --workers/--cluster pair as a checked Fanout (one line, before any flow runs, for a bad one)."""
    from bai_core.errors import BaiError
    from bai_core.fanout import Fanout
    from bai_core.settings import validated

    if args.workers < 1:
        raise BaiError(f"--workers {args.workers}: give 1 or more")
    fanout = validated(Fanout, workers=args.workers, cluster=args.cluster)
    fanout.check("--cluster")
    return fanout


def run(args) -> int:
    from bai_core.config import load_pipeline_config

    config = load_pipeline_config(local_file(args.config), args.overrides)

    def pipeline(api_url: str) -> dict:
        from bai.flows.pipeline import PipelineFailed, bai_pipeline

        try:
            return bai_pipeline(config)
        except PipelineFailed as e:
            if not args.json:
                print_stages(e.rows)
            raise

    summary = run_flow(pipeline, quiet=args.json, verbose=args.verbose)
    if args.json:
        print(json.dumps(summary))
    else:
        print_stages(summary["stages"])
        print(f"M_bai: {summary['outputs']['bai']}")
        if "actor" in summary["outputs"]:
            print(f"RL actor: {summary['outputs']['actor']}")
            print(f"metrics: {summary['outputs']['metrics']}  (bai diagnose it, or see the plots beside it)")
        for name, scores in summary["outputs"].get("scores", {}).items():
            tasks = ", ".join(f"{row['task']} {row['score']:.3f}" for row in scores["rows"])
            print(f"scores of {name}: overall {scores['overall']:.3f} ({tasks}): {scores['uri']}")
    return 0


def run_flow(call, quiet: bool, verbose: bool):
    """Run `call(api_url)` (a flow) against the configured Prefect API or bai's local server, with progress on
    stderr; a failure of Prefect's own machinery becomes one line, like any user error."""
    if not verbose:  # bai's tables say what happened; the Prefect UI keeps every log line
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    display = make_display(quiet=quiet)
    api_url = prefect_api.api_url_for_run(announce=lambda message: print(f"bai: {message}", file=sys.stderr))

    from prefect.settings import PREFECT_API_URL, temporary_settings

    progress.set_sink(display)
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            return call(api_url)
    except Exception as e:
        if verbose or not _from_prefect_machinery(e):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise BaiError(f"the Prefect API at {api_url} failed during the run ({type(e).__name__}: {first}); "
                       "check the server (its log, its disk), then run again: finished stages are cached "
                       "(--verbose shows the traceback)") from None
    finally:
        progress.set_sink(None)
        if display:
            display.close()


def _from_prefect_machinery(error: BaseException) -> bool:
    """Errors of the orchestration layer (HTTP to the API, Prefect's engine), not of bai's own code."""
    if isinstance(error, BaiError):
        return False
    root = type(error).__module__.split(".")[0]
    return root in {"httpx", "httpcore", "prefect", "sqlalchemy"} or "Prefect API" in str(error)


def print_stages(rows: list[dict]) -> None:
    print(f"{'stage':<20}{'state':<10}{'seconds':>8}  output")
    for row in rows:
        detail = row.get("output") or row.get("note") or row.get("error", "")
        print(f"{row['stage']:<20}{row['state']:<10}{row['seconds']:>8.2f}  {detail}")
