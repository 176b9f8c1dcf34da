"""The `bai` command: one small module per verb (merge, run, eval, compare, sweep, tune, diagnose, watch, demo,
server); heavy imports happen per verb.

Exits: 0 done; 1 a user error (BaiError), printed as one line on stderr; 2 a usage error; 130 / 143 stopped by
Ctrl-C / SIGTERM, with one line saying where; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from bai_core.errors import BaiError, Stopped

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
# The extra (pyproject.toml) each verb needs beyond the base install (merge and diagnose need none), and the modules
# that tell whether it is installed: checked before the verb does anything.
VERB_EXTRA = {"run": "pipeline", "compare": "pipeline", "sweep": "pipeline", "tune": "pipeline", "server": "pipeline",
              "eval": "eval",
              "demo": "train"}
EXTRA_MODULES = {"pipeline": ("prefect", "torch", "transformers", "trl", "lm_eval", "optuna"),
                 "eval": ("torch", "transformers", "lm_eval"), "train": ("torch", "transformers", "trl")}
# What the extras bring that the base install lacks (import names): missing deeper down, the same one line.
OPTIONAL_MODULES = {"torch", "transformers", "trl", "lm_eval", "prefect", "s3fs", "math_verify", "tokenizers",
                    "datasets", "huggingface_hub", "accelerate", "psutil", "optuna"}


_stop_arrived: int | None = None  # the first stop signal this process got, whatever it became on its way up


def _on_stop_signal(signum, frame):
    """SIGTERM raises Stopped, SIGINT KeyboardInterrupt, as ever; both are remembered first. Raised at an arbitrary
    point, the exception can come out of a library as another error (a failed Prefect task, a wrapped
    RuntimeError): the exit still says the run was stopped, with the signal's code, not "error"."""
    global _stop_arrived
    _stop_arrived = _stop_arrived or signum
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum)


def build_parser() -> argparse.ArgumentParser:
    from bai.cli import compare, demo, diagnose, eval, merge, run, server, sweep, tune, watch

    parser = argparse.ArgumentParser(prog="bai", description="Balanced Actor Initialization for stable RLHF.")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in (merge, run, eval, compare, sweep, tune, diagnose, watch, demo, server):
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from bai_core.progress import quiet_other_bars, stop_signals_seen

    quiet_other_bars()
    args = build_parser().parse_args(argv)
    global _stop_arrived
    _stop_arrived = None
    signal.signal(signal.SIGTERM, _on_stop_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored (a background job)
        signal.signal(signal.SIGINT, _on_stop_signal)
    try:
        _check_extra(args.command)
        with stop_signals_seen():
            return args.func(args)
    except BaiError as e:
        if _stop_arrived is not None:
            _stopped(args.command, _stop_arrived)
        print(f"bai: error: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in OPTIONAL_MODULES:
            raise  # a bug, not a missing extra
        print(f"bai: error: {_missing(args.command, e.name)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `bai diagnose LOG | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BaseException as e:
        signum = _stop_signal(e) or _stop_arrived
        if signum is None:
            raise
        _stopped(args.command, signum)


def _stopped(command: str, signum: int) -> None:
    _report_stop(command, signum)
    _exit_now(SIGNAL_EXIT[signum])


def _check_extra(command: str) -> None:
    """Refuse, in one line and before any work, a verb whose extra is not installed."""
    import importlib.util

    for module in EXTRA_MODULES.get(VERB_EXTRA.get(command, ""), ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise BaiError(_missing(command, module))


def _missing(command: str, module: str) -> str:
    extra = VERB_EXTRA.get(command, "all")
    return (f"bai {command} needs {module}, which is not installed here; install it with pip install "
            f"{_package(extra)} (or {_package('all')} for every command)")


def _package(extra: str) -> str:
    """What to pip-install for an extra: from PyPI, or from the checkout this bai runs from (an editable install:
    the project's pyproject.toml is beside this package's folder), where `bai[extra]` would fetch another bai."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        return f"'bai[{extra}]'"
    shown = "." if root == Path.cwd().resolve() else str(root)
    return f"-e '{shown}[{extra}]'"


def _stop_signal(error: BaseException) -> int | None:
    """Which signal this exception stands for: ours, Ctrl-C, or Prefect's own SIGTERM handler inside a flow run."""
    if isinstance(error, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(error, Stopped):
        return error.signum
    if type(error).__name__ == "TerminationSignal":
        return signal.SIGTERM
    return None


def _report_stop(command: str, signum: int) -> None:
    from bai_core import progress

    where = progress.where()
    name = signal.Signals(signum).name
    line = f"bai: stopped by {name}" + (f" during {where}" if where else "") + "; nothing partial was published"
    if command == "run":
        line += "; run the same command again to resume from the last finished stage"
    print(line, file=sys.stderr, flush=True)


def _exit_now(code: int) -> None:
    """Leave within seconds. Prefect's log and event workers drain at interpreter exit and, with the API slow or
    gone, that can take minutes: give them a bounded moment, then exit without waiting for them."""
    if "prefect" in sys.modules:
        def drain() -> None:
            try:
                from prefect.events.worker import EventsWorker
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=3)
                EventsWorker.drain_all(timeout=2)
            except Exception:
                pass

        worker = threading.Thread(target=drain, daemon=True)
        worker.start()
        worker.join(timeout=5)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
