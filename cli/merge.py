"""`bai merge`: the two-stage BAI merge of local checkpoint folders (no Prefect involved)."""

from __future__ import annotations

import json

from bai.cli.display import WarningsOnly, make_display
from bai.cli.paths import local_only, path_argument


def add_parser(sub) -> None:
    p = sub.add_parser(
        "merge",
        help="two-stage BAI merge of pretrained, instruct and reasoning checkpoints",
        description="M_sft = w*instruct + (1-w)*reasoning;  M_bai = alpha*pretrained + (1-alpha)*M_sft. "
        "Inputs are local Hugging Face checkpoint folders with safetensors weights.",
    )
    p.add_argument("--pretrained", required=True, type=path_argument, help="the pretrained base checkpoint folder")
    p.add_argument("--instruct", required=True, type=path_argument, help="the instruction-tuned checkpoint folder")
    p.add_argument("--reasoning", required=True, type=path_argument,
                   help="the distillation-trained reasoning checkpoint")
    p.add_argument("--output", required=True, type=path_argument, help="where to write M_bai (must not exist)")
    p.add_argument("--instruct-weight", type=float, default=0.5, help="w in stage 1 (default 0.5)")
    p.add_argument("--alpha", type=float, default=0.5, help="the pretrained model's weight in stage 2 (default 0.5)")
    p.add_argument("--group", dest="groups", action="append", default=[], metavar="GROUP:KEY=VALUE[,KEY=VALUE]",
                   help="a tensor group's own weights, e.g. --group attention:alpha=0.3 or --group "
                   "mlp:instruct_weight=0.7,alpha=0.2 (groups: embeddings, attention, mlp, norms, lm_head; repeatable)")
    p.add_argument("--stage1-output", type=path_argument, help="also write M_sft to this folder")
    p.add_argument("--dtype", default="auto", help="auto|float32|bfloat16|float16 (default auto: keep the inputs')")
    p.add_argument("--tokenizer-from", default="reasoning",
                   help="reasoning|instruct|pretrained (default reasoning): whose config, tokenizer and chat template "
                   "M_bai keeps; M_sft keeps the reasoning or instruct model's (the reasoning model's for pretrained)")
    p.add_argument("--strict", action="store_true",
                   help="refuse inputs whose tokenizers give a token id different texts (default: one warning)")
    p.add_argument("--max-shard-size", default="5GB", help="largest weight file to write (default 5GB)")
    p.add_argument("--workers", type=int, help="threads (default: number of cores)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output folders")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    p.set_defaults(func=run)


def _groups(given: list[str]) -> dict[str, dict[str, str]]:
    """--group attention:alpha=0.3,instruct_weight=0.6 -> {"attention": {"alpha": "0.3", ...}}, which MergeJob
    validates."""
    from bai_core.errors import BaiError

    groups = {}
    for text in given:
        group, sep, pairs = text.partition(":")
        weights = dict(pair.partition("=")[::2] for pair in pairs.split(",") if pair)
        if not sep or not weights or any(not key or not value for key, value in weights.items()):
            raise BaiError(f"--group {text!r}: expected GROUP:KEY=VALUE, e.g. attention:alpha=0.3")
        groups[group] = {**groups.get(group, {}), **weights}
    return groups


def run(args) -> int:
    from bai_core import progress
    from bai_core.merge import merge_two_stages
    from bai_core.merge.config import MergeJob
    from bai_core.settings import validated

    config = validated(
        MergeJob,
        pretrained=local_only(args.pretrained, "--pretrained"),
        instruct=local_only(args.instruct, "--instruct"),
        reasoning=local_only(args.reasoning, "--reasoning"),
        output=local_only(args.output, "--output"),
        instruct_weight=args.instruct_weight,
        alpha=args.alpha,
        groups=_groups(args.groups),
        stage1_output=None if args.stage1_output is None else local_only(args.stage1_output, "--stage1-output"),
        dtype=args.dtype,
        tokenizer_from=args.tokenizer_from,
        max_shard_size=args.max_shard_size,
        workers=args.workers,
        overwrite=args.overwrite,
        tokenizers="strict" if args.strict else "warn",
    )
    display = make_display(quiet=args.json)
    notes = display or WarningsOnly()  # the tokenizer check's warning, above the bar
    progress.add_sink(notes)
    try:
        result = merge_two_stages(config, progress=display.progress if display else None)
    finally:
        progress.remove_sink(notes)
        if display:
            display.close()
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
        tokenizers = result.manifest["tokenizers"]
        print(f"  config, tokenizer and chat template from {tokenizers['donor']}; stops on "
              + ", ".join(f"{s['id']} {s['text']!r}" for s in tokenizers["stop_ids"]))
        print(f"  {_size(result.bytes_read)} read, {_size(result.bytes_written)} written in {result.seconds:.2f} s")
    return 0


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} B"
