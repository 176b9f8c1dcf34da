"""`bai eval`: score any checkpoint with lm-eval outside the pipeline (no Prefect involved), cached in the store
like the pipeline's evaluate stage; `--json` includes the `lm-eval run` line that reproduces the scores."""

from __future__ import annotations

import json

from bai.cli.display import WarningsOnly, make_display


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="score a checkpoint with lm-evaluation-harness (the demo suite, the paper suite or any lm-eval tasks)",
        description="Score SOURCE (a local folder, s3://bucket/prefix, a hub id org/name[@revision] or demo://...) "
        "with lm-eval's HFLM: the primary metric of each task, the overall mean, the share of answers that "
        "finished before the token limit and their mean length in tokens. Results go to the artifact store "
        "(evaluations/<key>/: lm-eval's results JSON and samples, scores.json, scores.csv); a second run with "
        "the same model and settings reads them back.",
    )
    p.add_argument("source", help="the checkpoint to score")
    p.add_argument("--suite", default="demo", help="demo, paper, or lm-eval task names separated by commas "
                                                   "(default demo)")
    p.add_argument("--limit", type=int, help="score only the first N examples of each task (a smoke test)")
    p.add_argument("--batch-size", type=int, default=64, help="generation batch size (default 64)")
    p.add_argument("--max-gen-toks", type=int, help="tokens an answer may have (default: each task's own)")
    p.add_argument("--no-chat-template", dest="apply_chat_template", action="store_false",
                   help="prompt with plain text instead of the model's chat template")
    p.add_argument("--think-end-token", default="</think>",
                   help="score only the text after it (default </think>; 'none' scores the whole output)")
    p.add_argument("--enable-thinking", choices=["true", "false"],
                   help="passed to chat templates with a thinking switch (default: the template's own)")
    p.add_argument("--demo-family", help="size@seed of the demo family whose eval split the demo suite scores "
                                         "(default: from a demo:// source or a built family's folder)")
    p.add_argument("--device", help="cpu, cuda, cuda:0 ... (default: cuda when there is one)")
    p.add_argument("--confirm-run-unsafe-code", action="store_true",
                   help="let tasks that execute the model's code (MBPP+) run it")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf",
                   help="lm-eval's model type (default hf; vllm where vLLM is installed, no answer lengths)")
    p.add_argument("--processes", type=int, default=1,
                   help="hf: score data-parallel on this many GPUs (lm-eval under accelerate launch; default 1)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per copy of the model")
    p.add_argument("--data-parallel-size", type=int, default=1, help="vllm: copies of the model")
    p.add_argument("--store", default="bai-artifacts", help="artifact store: a folder or s3://bucket/prefix "
                                                            "(default ./bai-artifacts)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from bai_core import progress
    from bai_core.artifact_stage import run_stage
    from bai_core.evaluation.config import EvaluateSettings
    from bai_core.evaluation.stage import EvaluateStage, ScoredModel, prepare_evaluate
    from bai_core.settings import validated
    from bai_core.sources import fetch
    from bai_core.storage import StorageConfig

    settings = validated(
        EvaluateSettings, suite=args.suite, limit=args.limit, batch_size=args.batch_size,
        max_gen_toks=args.max_gen_toks, apply_chat_template=args.apply_chat_template,
        think_end_token=None if args.think_end_token.lower() == "none" else args.think_end_token,
        enable_thinking=None if args.enable_thinking is None else args.enable_thinking == "true",
        demo_family=args.demo_family, device=args.device, backend=args.backend,
        confirm_run_unsafe_code=args.confirm_run_unsafe_code, processes=args.processes,
        tensor_parallel_size=args.tensor_parallel_size, data_parallel_size=args.data_parallel_size)
    storage = validated(StorageConfig, uri=args.store)
    display = make_display(quiet=args.json)
    notes = WarningsOnly()  # e.g. max_gen_toks past the model's context, before any model loads
    progress.add_sink(notes)
    try:
        # bad task names and splits fail before any download
        metadata = prepare_evaluate(settings, [args.source], {args.source: args.source}, storage)
        fetched = fetch(args.source, storage)
        model = ScoredModel(name=args.source, source=args.source, fingerprint=fetched.fingerprint)
        ref, how = run_stage(EvaluateStage(model, settings, storage, metadata,
                                           report=display.progress if display else lambda *_: None))
    finally:
        progress.remove_sink(notes)
        if display:
            display.close()
    if args.json:
        print(json.dumps({**ref.model_dump(mode="json"), "how": how}))
        return 0
    print_scores([ref])
    print(f"results: {ref.uri}" + ("" if how == "built" else f"  ({how})"))
    print(f"the same scores from lm-eval's own CLI: {ref.lm_eval_command}")
    return 0


def _cell(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def print_scores(refs) -> None:
    """One line per model and task, then the overall: what lm-eval's own table shows, plus length and finish."""
    print(f"{'model':<28}{'task':<28}{'metric':<30}{'score':>7}{'n':>6}{'finished':>9}{'tokens':>8}")
    for ref in refs:
        for row in ref.rows:
            print(f"{ref.model[-27:]:<28}{row['task'][:27]:<28}{row['metric'][:29]:<30}{_cell(row['score']):>7}"
                  f"{row['examples']:>6}{_cell(row['finished_share']):>9}{_cell(row['mean_answer_tokens'], 1):>8}")
        if len(ref.rows) > 1:
            print(f"{ref.model[-27:]:<28}{'overall':<28}{'mean of primary metrics':<30}{ref.overall:>7.3f}")
