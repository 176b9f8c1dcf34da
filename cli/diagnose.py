"""`bai diagnose LOG`: the two stability detectors on any RL run's log (ours, TRL's, verl's, a wandb CSV)."""

from __future__ import annotations

import json

from bai.cli.paths import local_file, local_only, path_argument
from bai_core.errors import BaiError

DETECTORS = {"collapse": "collapse", "hockey-stick": "hockey_stick", "hockey_stick": "hockey_stick"}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "diagnose",
        help="detect Sequence Length Collapse and the Reward Hockey Stick in a training log",
        description="Reads a TRL trainer_state.json, a bai metrics.jsonl, a verl metrics log (JSONL) or a CSV with "
        "step / length / reward columns (e.g. a wandb export), and prints each detector's verdict with its evidence.",
    )
    p.add_argument("log", type=path_argument, help="the log file: a path, or a file:// or s3:// URI as bai prints it")
    p.add_argument("--json", action="store_true", help="print one JSON object (detected + evidence per detector)")
    p.add_argument("--plot", type=path_argument, metavar="DIR",
                   help="also write length / reward / per-bucket PNGs into DIR")
    p.add_argument("--fail-on", default="", metavar="DETECTORS",
                   help="exit 3 if one of these fired: collapse, hockey-stick (comma-separated)")
    p.add_argument("--steps", type=int, help="the run's planned length, for a run still in progress "
                   "(windows scale with it; default: the steps in the log)")
    p.set_defaults(func=diagnose_command)


def diagnose_command(args) -> int:
    from bai_core.stability.curves import read_curves

    fail_on = set()
    for name in filter(None, (part.strip() for part in args.fail_on.split(","))):
        if name not in DETECTORS:
            raise BaiError(f"--fail-on {name!r}: unknown detector (known: collapse, hockey-stick)")
        fail_on.add(DETECTORS[name])
    if args.steps is not None and args.steps <= 0:
        raise BaiError(f"--steps must be > 0, got {args.steps}")
    log = local_file(args.log)
    curves = read_curves(log)
    result = curves.diagnose(run_steps=args.steps)
    plots = []
    if args.plot:
        from bai_core.stability.plots import write_plots

        plots = write_plots(curves, result, local_only(args.plot, "--plot"), title=log.name)
    if args.json:
        print(json.dumps({**result.to_json(), "log": str(args.log), "format": curves.format,
                          "steps": len(curves.steps), "plots": [str(p) for p in plots]}))
    else:
        print(format_diagnosis(result, f"{args.log} ({curves.format}, {len(curves.steps)} steps)"))
        for path in plots:
            print(f"plot: {path}")
    return 3 if fail_on & set(result.fired) else 0


def _fmt(value, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def format_diagnosis(result, heading: str) -> str:
    """The verdicts with their evidence, for a person."""
    c, h = result.sequence_length_collapse, result.reward_hockey_stick
    w = result.windows
    lines = [heading]
    if w:
        lines.append(f"windows: smoothing {w.smoothing} points, early {w.early} steps, "
                     f"collapse recovery {w.recovery} steps (run of {w.run_steps} steps)")
    lines += [f"Sequence Length Collapse: {'DETECTED' if c.detected else 'not detected'} - {c.reason}",
              f"  L0 {_fmt(c.L0)}  minimum {_fmt(c.minimum)} at step {_fmt(c.minimum_step)} "
              f"(drop {_fmt(c.drop, '.0%') if c.drop is not None else '-'})  fell below half at {_fmt(c.collapsed_at)}  "
              f"recovered {_fmt(c.recovered_at) if c.recovered else 'no' if c.recovered is False else '-'}  "
              f"final {_fmt(c.final)}  trend {_fmt(c.trend_per_100_steps, '+.3g')} per 100 steps",
              f"Reward Hockey Stick: {'DETECTED' if result.hockey_stick_detected else 'not detected'}"]
    for name, v in [("all responses", h), *result.reward_hockey_stick_by_length.items()]:
        verdict = "DETECTED" if v.detected else "no" if v.enough_samples else "too sparse"
        lines.append(f"  {name:<14} {verdict:<10} r0 {_fmt(v.r0)}  minimum {_fmt(v.minimum)}"
                     f" at step {_fmt(v.minimum_step)}  drop {_fmt(v.drop)}  descent {_fmt(v.descent_steps)} / "
                     f"recovery {_fmt(v.recovery_steps)} steps  final {_fmt(v.final)}  confidence "
                     f"{_fmt(v.confidence, '.3f')}  completions {_fmt(v.samples_at_start)} at r0 / "
                     f"{_fmt(v.samples_at_minimum)} at the minimum ({v.reason})")
    for name, why in result.sparse_buckets.items():
        lines.append(f"  {name:<14} {'too sparse':<10} not judged: {why}")
    return "\n".join(lines)
