"""`bai diagnose LOG`: the stability detectors on any RL run's log (bai's, TRL's, verl's, OpenRLHF's, wandb's,
TensorBoard's), recognised by content.

Exit codes: 0 judged, nothing named in --fail-on fired; 3 a detector named in --fail-on fired; 4 a detector named
in --fail-on could not be judged (too few points, or its metric is not in the log) and none fired; 1 a log it
cannot read.
"""

from __future__ import annotations

import json

from bai.cli.paths import local_file, local_only, path_argument
from bai_core.errors import BaiError

FIRED_EXIT, CANNOT_JUDGE_EXIT = 3, 4
DETECTOR_NAMES = {"collapse": "collapse", "hockey-stick": "hockey_stick", "hockey_stick": "hockey_stick",
                  "entropy": "entropy"}
LOG_FORMATS = ("a TRL trainer_state.json or TRL console output, verl's console or JSONL, wandb's files/output.log "
               "or a history export (CSV / JSONL), OpenRLHF's logs, bai's metrics.jsonl, TensorBoard event files")


def add_detector_options(p) -> None:
    """The options `bai diagnose` and `bai watch` share."""
    p.add_argument("log", type=path_argument, help="the log: a path, or a file:// or s3:// URI as bai prints it")
    p.add_argument("--fail-on", default="", metavar="DETECTORS",
                   help=f"exit {FIRED_EXIT} if one of these fired, {CANNOT_JUDGE_EXIT} if one could not be judged: "
                        "collapse, hockey-stick, entropy (comma-separated)")
    p.add_argument("--steps", type=int, help="the run's planned length in steps, where the log does not say "
                   "(windows scale with it; default: the log's max_steps / total_training_steps / progress bar, "
                   "else absolute windows)")
    p.add_argument("--completions-per-step", type=float, metavar="N",
                   help="completions behind each step's point (prompts x generations), where the log does not say")
    p.add_argument("--run", metavar="NAME", help="the run to read from a table holding several (a sweep's wandb "
                   "export); default the first")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "diagnose",
        help="detect Sequence Length Collapse, the Reward Hockey Stick and entropy collapse / spikes in a log",
        description=f"Reads {LOG_FORMATS}, recognised by content, and prints each detector's verdict with its "
        f"evidence: DETECTED, not detected, or cannot judge. Exit {FIRED_EXIT}: a detector named in --fail-on "
        f"fired; {CANNOT_JUDGE_EXIT}: one could not be judged.",
    )
    add_detector_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (verdict + evidence per detector)")
    p.add_argument("--plot", type=path_argument, metavar="DIR", help="also write the curves as PNGs into DIR")
    p.set_defaults(func=diagnose_command)


def detector_options(args) -> set[str]:
    """--fail-on's detectors; --steps and --completions-per-step checked."""
    fail_on = set()
    for name in filter(None, (part.strip() for part in args.fail_on.split(","))):
        if name not in DETECTOR_NAMES:
            raise BaiError(f"--fail-on {name!r}: unknown detector (known: collapse, hockey-stick, entropy)")
        fail_on.add(DETECTOR_NAMES[name])
    if args.steps is not None and args.steps <= 0:
        raise BaiError(f"--steps must be > 0, got {args.steps}")
    if args.completions_per_step is not None and args.completions_per_step <= 0:
        raise BaiError(f"--completions-per-step must be > 0, got {args.completions_per_step:g}")
    return fail_on


def exit_code(diagnosis, fail_on: set[str]) -> int:
    if fail_on & set(diagnosis.fired):
        return FIRED_EXIT
    if fail_on & set(diagnosis.cannot_judge):
        return CANNOT_JUDGE_EXIT
    return 0


def diagnose_command(args) -> int:
    from bai_core.stability.logs import read_log

    fail_on = detector_options(args)
    log = local_file(args.log)
    curves = read_log(log, args.completions_per_step, args.run)
    curves.planned_steps = args.steps or curves.planned_steps
    result = curves.diagnose()
    plots = []
    if args.plot:
        from bai_core.stability.plots import write_plots

        plots = write_plots(curves, result, local_only(args.plot, "--plot"), title=log.name)
    code = exit_code(result, fail_on)
    if args.json:
        print(json.dumps({**result.to_json(), "log": str(args.log), "format": curves.format,
                          "points": len(curves.steps), "first_step": curves.steps[0], "last_step": curves.steps[-1],
                          "planned_steps": curves.planned_steps,
                          "completions_per_step": curves.completions_per_step,
                          "plots": [str(p) for p in plots], "exit": code}))
    else:
        print(format_diagnosis(result, f"{args.log} ({curves.describe()})"))
        for path in plots:
            print(f"plot: {path}")
        for name in sorted(fail_on & set(result.cannot_judge) - set(result.fired)):
            print(f"cannot judge {name.replace('_', ' ')}: {result.cannot_judge[name]}")
    return code


def _fmt(value, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def format_diagnosis(result, heading: str) -> str:
    """The verdicts with their evidence, for a person."""
    from bai_core.stability.detectors import status

    c, h, e = result.sequence_length_collapse, result.reward_hockey_stick, result.entropy
    lines = [heading]
    if result.windows:
        lines.append(f"windows: {result.windows.describe()}")
    lines.append(f"Sequence Length Collapse: {status(c)} - {c.reason}")
    if c.judged:
        recovered = _fmt(c.recovered_at) if c.recovered else "no" if c.recovered is False else "-"
        lines.append(f"  L0 {_fmt(c.L0)} (over {c.baseline_points} point{'' if c.baseline_points == 1 else 's'})  minimum {_fmt(c.minimum)} at step "
                     f"{_fmt(c.minimum_step)} (drop {_fmt(c.drop, '.0%')})  below {0.5:g} x L0 at "
                     f"{_fmt(c.below_half_at)}  recovered {recovered}  final {_fmt(c.final)}  trend "
                     f"{_fmt(c.trend_per_100_steps, '+.3g')} per 100 steps"
                     + (f"  cut at the cap {_fmt(c.clipped_start, '.0%')} -> {_fmt(c.clipped_end, '.0%')}"
                        if c.clipped_start is not None else ""))
    lines.append(f"Reward Hockey Stick: {'DETECTED' if result.hockey_stick_detected else status(h)}"
                 + ("" if h.judged else f" - {h.reason}"))
    if h.judged:
        for name, v in [("all responses", h), *result.reward_hockey_stick_by_length.items()]:
            verdict = "DETECTED" if v.detected else "no" if v.enough_samples else "too sparse"
            lines.append(f"  {name:<14} {verdict:<10} r0 {_fmt(v.r0)}  minimum {_fmt(v.minimum)}"
                         f" at step {_fmt(v.minimum_step)}  drop {_fmt(v.drop)}  descent {_fmt(v.descent_steps)} / "
                         f"recovery {_fmt(v.recovery_steps)} steps  final {_fmt(v.final)}  confidence "
                         f"{_fmt(v.confidence, '.3f')}  {v.samples_unit} {_fmt(v.samples_at_start)} at r0 / "
                         f"{_fmt(v.samples_at_minimum)} at the minimum ({v.reason})")
        for name, why in result.sparse_buckets.items():
            lines.append(f"  {name:<14} {'too sparse':<10} not judged: {why}")
    lines.append(f"Entropy: {status(e)} - {e.reason}")
    if e.judged:
        lines.append(f"  E0 {_fmt(e.E0)}  minimum {_fmt(e.minimum)} at step {_fmt(e.minimum_step)}  final "
                     f"{_fmt(e.final)}" + (f"  spike {_fmt(e.spike_value)} at step {e.spike_step} over "
                                           f"{_fmt(e.spike_reference)}" if e.spike_step is not None else ""))
    return "\n".join(lines)
