"""`bai watch LOG`: the detectors on a run bai does not drive, as its log grows. Any log `bai diagnose` reads; the
file is read again whenever it changes (a line still being written waits for the next read), the detectors run
every `--every` steps, and each detector that fires is printed once, at the step it was seen, and sent as a
Prefect event (`bai.stability.<detector>`) where a Prefect server is set (PREFECT_API_URL).

Ends on Ctrl-C, after `--idle` seconds without the log growing, or at once when a detector named in --fail-on
fires (exit 3). At the end: the verdicts on the whole log, and diagnose's exit code.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bai.cli.diagnose import FIRED_EXIT, add_detector_options, detector_options, exit_code, format_diagnosis
from bai_core.errors import BaiError


def add_parser(sub) -> None:
    p = sub.add_parser("watch", help="follow a growing RL log and print each stability verdict as it happens",
                       description=__doc__.split("\n\n")[0].removeprefix("`bai watch LOG`: "))
    add_detector_options(p)
    p.add_argument("--every", type=int, default=5, metavar="STEPS", help="judge every this many steps (default 5)")
    p.add_argument("--poll", type=float, default=2.0, metavar="SECONDS", help="look at the file this often")
    p.add_argument("--idle", type=float, metavar="SECONDS",
                   help="stop when the log has not grown for this long (default: watch until Ctrl-C)")
    p.set_defaults(func=watch_command)


def _emit(alarm, log) -> None:
    """The alarm as a Prefect event about the log (resource `bai.watch.<path>`), where a server is set (best
    effort: watching goes on without one)."""
    if not os.environ.get("PREFECT_API_URL"):
        return
    try:
        from prefect.events import emit_event

        from bai_core.stability.live import DETECTOR_EVENTS

        emit_event(event=DETECTOR_EVENTS[alarm.detector],
                   resource={"prefect.resource.id": f"bai.watch.{log.resolve()}", "prefect.resource.name": log.name},
                   payload={"step": alarm.step, "detector": alarm.detector, **alarm.evidence})
    except Exception as e:  # noqa: BLE001 - an unreachable server must not stop the watch
        print(f"(no Prefect event: {type(e).__name__})", file=sys.stderr)


def _stamp(log: Path) -> tuple | None:
    """What changes when the log grows: its size and time, or for a TensorBoard folder its files' (an event file
    grows without touching the folder)."""
    if not log.exists():
        return None
    files = sorted(p for p in log.rglob("*") if p.is_file()) if log.is_dir() else [log]
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def watch_command(args) -> int:
    from bai_core.stability.live import LiveDetectors
    from bai_core.stability.logs import read_log

    fail_on = detector_options(args)
    if args.every <= 0 or args.poll <= 0:
        raise BaiError("--every and --poll must be > 0")
    if not isinstance(args.log, Path):
        raise BaiError(f"bai watch {args.log}: follows a local file as it grows; `bai diagnose {args.log}` reads an "
                       f"S3 object once")
    log = args.log
    live = LiveDetectors(every=args.every)
    seen, grew_at, curves, announced = None, time.monotonic(), None, False
    try:
        while True:
            stamp = _stamp(log)
            if stamp != seen and stamp is not None:
                seen, grew_at = stamp, time.monotonic()
                try:
                    curves = read_log(log, args.completions_per_step, args.run)
                    curves.planned_steps = args.steps or curves.planned_steps
                except BaiError:
                    pass  # half-written (a JSON file being rewritten): the next read will do
                if curves is not None and curves.steps:
                    if not announced:
                        print(f"watching {log} ({curves.describe()})", flush=True)
                        announced = True
                    for alarm in live.check(curves):
                        print(alarm.line(), flush=True)
                        _emit(alarm, log)
                        if alarm.detector in fail_on:
                            return FIRED_EXIT
            if args.idle is not None and time.monotonic() - grew_at > args.idle:
                break
            time.sleep(args.poll)
    except KeyboardInterrupt:
        pass
    if curves is None or not curves.steps:
        raise BaiError(f"{log}: no training steps appeared in it" + (" (no such file)" if not log.exists() else ""))
    for alarm in live.check(curves, final=True):
        print(alarm.line(), flush=True)
        _emit(alarm, log)
    print(format_diagnosis(live.diagnosis, f"{log} ({curves.describe()})"), flush=True)
    return exit_code(live.diagnosis, fail_on)
