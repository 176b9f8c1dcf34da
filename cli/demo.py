"""`bai demo build`: train the offline demo family into a folder; `bai demo ship`: make a built family the one bai
ships (for maintainers, after a recipe change). No Prefect involved."""

from __future__ import annotations

import json
import sys

from bai.cli.display import make_display
from bai.cli.paths import local_only, path_argument


def add_parser(sub) -> None:
    demo = sub.add_parser("demo", help="the offline demo model family").add_subparsers(dest="demo_command",
                                                                                      required=True)
    p = demo.add_parser(
        "build",
        help="train the tiny pretrained/instruct/reasoning/reward family on CPU",
        description="Trains the demo family on synthetic arithmetic word problems and prints its report. The "
        "training runs on one thread and on pinned kernels (torch's generic ones, MKL's COMPATIBLE branch), in a "
        "process of its own, so that a seed gives the same weights on any x86 processor with the same torch. A "
        "folder that already holds the same size, seed and recipe is reused: no training. The demo and test sizes ship "
        "with bai (demo at seed 1, test at seed 0: demo://demo/<member> uses the shipped one without training).",
    )
    p.add_argument("--size", default="demo", help="tiny (seconds; learns next to nothing: for tests of the build), "
                                                  "test (about 2 minutes) or demo (about 48 minutes on a 2-core "
                                                  "CPU); default demo")
    p.add_argument("--output", type=path_argument, required=True,
                   help="folder for the four checkpoints and family.json")
    p.add_argument("--seed", type=int, help="default: the seed the size ships at (demo 1, test 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a folder holding something else")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    p.set_defaults(func=build)
    s = demo.add_parser(
        "ship",
        help="make a built family the one bai ships (maintainers: after a recipe change)",
        description="Copies a family written by `bai demo build` (checked intact, of the current recipe) into "
        "bai_core/demo/shipped/<size>-seed<seed>/ with the list of files and hashes that every use verifies. "
        "Commit that folder.",
    )
    s.add_argument("family", type=path_argument, help="a folder written by `bai demo build`")
    s.set_defaults(func=ship)


def build(args) -> int:
    from bai_core.demo.family import build_family, format_report
    from bai_core.demo.shipped import shipped_report
    from bai_core.demo.sizes import seed_or_shipped

    seed = seed_or_shipped(args.size, args.seed)
    display = make_display(quiet=args.json)
    try:
        report = build_family(local_only(args.output, "--output"), args.size, seed, overwrite=args.overwrite,
                              progress=display.progress if display else None)
    finally:
        if display:
            display.close()
    print(json.dumps(report.to_json()) if args.json else format_report(report))
    shipped = shipped_report(args.size, seed)
    if shipped is not None and shipped.recipe == report.recipe:
        ours = {m: v["fingerprint"] for m, v in report.models.items()}
        if ours != {m: v["fingerprint"] for m, v in shipped.models.items()}:
            print(f"bai: note: these weights differ from the shipped {args.size} family's (built on "
                  f"{_machine(shipped.built_on)}; this one on {_machine(report.built_on)}). On the pinned kernels "
                  "an x86 processor with the same torch gives the shipped bits; another torch or processor "
                  f"architecture may not (docs/demo-family.md). demo://{args.size}/<member> keeps using the shipped "
                  "one.", file=sys.stderr)
    return 0


def _machine(built_on: dict | None) -> str:
    built_on = built_on or {}
    return (f"{built_on.get('cpu', 'an unrecorded CPU')} ({built_on.get('machine', '?')}), torch "
            f"{built_on.get('torch', '?')}, kernels {built_on.get('kernels', 'not pinned')}")


def ship(args) -> int:
    from bai_core.demo.shipped import ship as ship_family

    print(f"shipped: {ship_family(local_only(args.family, 'FAMILY'))}")
    return 0
