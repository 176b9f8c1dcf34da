"""The `bai` command. Verbs that need only the library (merge, demo) live here; heavy imports happen per verb.

User errors (BaiError) print one line on stderr and exit 1; usage errors exit 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from bai_core.errors import BaiError


def _merge_parser(sub) -> None:
    p = sub.add_parser(
        "merge",
        help="two-stage BAI merge of pretrained, instruct and reasoning checkpoints",
        description="M_sft = w*instruct + (1-w)*reasoning;  M_bai = alpha*pretrained + (1-alpha)*M_sft. "
        "Inputs are local Hugging Face checkpoint folders with safetensors weights.",
    )
    p.add_argument("--pretrained", required=True, type=Path, help="the pretrained base checkpoint folder")
    p.add_argument("--instruct", required=True, type=Path, help="the instruction-tuned checkpoint folder")
    p.add_argument("--reasoning", required=True, type=Path, help="the distillation-trained reasoning checkpoint")
    p.add_argument("--output", required=True, type=Path, help="where to write M_bai (must not exist)")
    p.add_argument("--instruct-weight", type=float, default=0.5, help="w in stage 1 (default 0.5)")
    p.add_argument("--alpha", type=float, default=0.5, help="the pretrained model's weight in stage 2 (default 0.5)")
    p.add_argument("--stage1-output", type=Path, help="also write M_sft to this folder")
    p.add_argument("--dtype", default="auto", help="auto|float32|bfloat16|float16 (default auto: keep the inputs')")
    p.add_argument("--tokenizer-from", default="reasoning", help="reasoning|instruct|pretrained (default reasoning)")
    p.add_argument("--max-shard-size", default="5GB", help="largest weight file to write (default 5GB)")
    p.add_argument("--workers", type=int, help="threads (default: number of cores)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output folders")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    p.set_defaults(func=_cmd_merge)


def _cmd_merge(args) -> int:
    from bai_core.config import MergeConfig, validated
    from bai_core.merge import bai_merge

    config = validated(
        MergeConfig,
        pretrained=args.pretrained,
        instruct=args.instruct,
        reasoning=args.reasoning,
        output=args.output,
        instruct_weight=args.instruct_weight,
        alpha=args.alpha,
        stage1_output=args.stage1_output,
        dtype=args.dtype,
        tokenizer_from=args.tokenizer_from,
        max_shard_size=args.max_shard_size,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    with _ProgressBar(enabled=not args.json) as bar:
        result = bai_merge(config, progress=bar.update)
    summary = {
        "output": str(result.output),
        "stage1_output": str(result.stage1_output) if result.stage1_output else None,
        "seconds": round(result.seconds, 3),
        "bytes_read": result.bytes_read,
        "bytes_written": result.bytes_written,
        "manifest": result.manifest,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {result.output}" + (f" and {result.stage1_output}" if result.stage1_output else ""))
        print(f"  {result.manifest['formula']}  ({result.manifest['dtype']}, {result.manifest['tensors']} tensors)")
        print(f"  {_size(result.bytes_read)} read, {_size(result.bytes_written)} written in {result.seconds:.2f} s")
    return 0


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} B"


def _run_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the BAI pipeline (Prefect flow) from a YAML config",
        description="Fetch the three checkpoints, merge stage 1 and stage 2 as cached Prefect tasks, publish the "
        "artifacts. Uses the Prefect API in PREFECT_API_URL, or a temporary local one when unset.",
    )
    p.add_argument("config", type=Path, help="pipeline config (YAML), e.g. configs/demo.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set merge.alpha=0.2 (repeatable)")
    p.add_argument("--json", action="store_true", help="print the run summary as one JSON object on stdout")
    p.add_argument("--verbose", action="store_true", help="show Prefect's own log lines on stderr")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    import os

    from bai_core.config import load_pipeline_config

    config = load_pipeline_config(args.config, args.overrides)
    _check_prefect_api()
    if not args.verbose:  # the table below says what happened; the Prefect UI keeps every log line
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from bai_core.progress import set_sink
    from flows.pipeline import PipelineFailed, bai_pipeline

    try:
        with _ProgressBar(enabled=not args.json) as bar:
            set_sink(bar.update)
            summary = bai_pipeline(config)
    except PipelineFailed as e:
        if not args.json:
            _print_stages(e.rows)
        raise
    finally:
        set_sink(None)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_stages(summary["stages"])
        print(f"M_bai: {summary['outputs']['bai']}")
    return 0


def _demo_parser(sub) -> None:
    demo = sub.add_parser("demo", help="the offline demo model family").add_subparsers(dest="demo_command",
                                                                                      required=True)
    p = demo.add_parser(
        "build",
        help="train the tiny pretrained/instruct/reasoning/reward family on CPU",
        description="Trains the demo family on synthetic arithmetic word problems (deterministic for a seed) and "
        "prints its report. A folder that already holds the same size, seed and recipe is reused: no training.",
    )
    p.add_argument("--size", default="demo", help="test (well under a minute) or demo (a few minutes); default demo")
    p.add_argument("--output", type=Path, required=True, help="folder for the four checkpoints and family.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a folder holding something else")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    p.set_defaults(func=_cmd_demo_build)


def _cmd_demo_build(args) -> int:
    from bai_core.demo.family import build_family, format_report

    with _ProgressBar(enabled=not args.json) as bar:
        report = build_family(args.output, args.size, args.seed, overwrite=args.overwrite, progress=bar.update)
    print(json.dumps(report.to_json()) if args.json else format_report(report))
    return 0


def _check_prefect_api() -> None:
    """With PREFECT_API_URL set, fail in one line if nothing answers there (instead of Prefect's traceback)."""
    import os
    import urllib.request

    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return  # Prefect starts a temporary local API for this run
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10):
            pass
    except OSError as e:
        raise BaiError(
            f"the Prefect API at {url} does not answer ({getattr(e, 'reason', e)}); start it "
            "(infra/prefect-server.sh) or unset PREFECT_API_URL to run with a temporary local API"
        ) from None


def _print_stages(rows: list[dict]) -> None:
    print(f"{'stage':<18}{'state':<10}{'seconds':>8}  output")
    for row in rows:
        detail = row.get("output") or row.get("note") or row.get("error", "")
        print(f"{row['stage']:<18}{row['state']:<10}{row['seconds']:>8.2f}  {detail}")


class _ProgressBar:
    """One tqdm bar per phase, on stderr (stdout stays clean for --json); silent when stderr is not a terminal."""

    LABELS = {"fingerprint": "fingerprinting inputs", "merge": "merging", "pretrained": "training pretrained",
              "instruct": "training instruct", "reasoning": "training reasoning", "reward": "training reward model",
              "evaluate": "evaluating"}

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.phase = enabled, None, None

    def __enter__(self):
        return self

    def update(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if phase != self.phase:
            self._close()
            self.phase = phase
            unit = dict(unit="B", unit_scale=True, unit_divisor=1024) if phase == "merge" else {}
            label = self.LABELS.get(phase, phase)
            self.bar = tqdm(total=total, desc=label, file=sys.stderr, leave=False, disable=None, **unit)
        self.bar.update(done - self.bar.n)

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __exit__(self, *exc):
        self._close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bai", description="Balanced Actor Initialization for stable RLHF.")
    sub = parser.add_subparsers(dest="command", required=True)
    _merge_parser(sub)
    _run_parser(sub)
    _demo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM becomes an exception, so temporary output folders are cleaned up like on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return args.func(args)
    except BaiError as e:
        print(f"bai: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bai: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
