"""`bai demo build`: train the offline demo family into a folder (no Prefect involved)."""

from __future__ import annotations

import json
from pathlib import Path

from bai_core.cli.display import make_display


def add_parser(sub) -> None:
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
    p.set_defaults(func=build)


def build(args) -> int:
    from bai_core.demo.family import build_family, format_report

    display = make_display(quiet=args.json)
    try:
        report = build_family(args.output, args.size, args.seed, overwrite=args.overwrite,
                              progress=display.progress if display else None)
    finally:
        if display:
            display.close()
    print(json.dumps(report.to_json()) if args.json else format_report(report))
    return 0
