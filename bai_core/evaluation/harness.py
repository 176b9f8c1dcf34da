"""The one place bai calls lm-evaluation-harness: `lm_eval.simple_evaluate` on an HFLM over a local checkpoint.

lm-eval does all the scoring. bai adds two measurements the paper's collapse is about and lm-eval does not keep: how
long each answer is in tokens (think block included) and whether it finished: ended by itself before the token
limit, with its think block closed, read as the rewards read completions (`bai_core.completion`; `MeasuredHFLM`,
which changes nothing lm-eval computes). `lm_eval_command` is the `lm-eval run` line that gives the
same scores with lm-eval's own CLI.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import os
import shlex
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bai_core import plugins
from bai_core.errors import BaiError
from bai_core.evaluation.catalog import SUITES, SuiteTask
from bai_core.evaluation.config import EvaluateSettings
from bai_core.io.checkpoint import has_chat_template


def named_suites() -> dict[str, tuple[SuiteTask, ...]]:
    """bai's suites (catalog.py) and the plug-ins'."""
    return {**SUITES, **{name: suite.tasks for name, suite in plugins.suites().items()}}


def suite_tasks(settings: EvaluateSettings) -> list[SuiteTask]:
    """The tasks to score, with their primary metrics: a named suite's, or the listed task names (their primary
    metric is the first one lm-eval reports for them)."""
    names, suites = settings.task_names, named_suites()
    if len(names) == 1 and names[0] in suites:
        return list(suites[names[0]])
    return [SuiteTask(name, None, "custom", name) for name in names]


def plugin_suites(tasks: list[SuiteTask]) -> list[plugins.Suite]:
    """The plug-ins' suites some of whose tasks are scored (they resolve their lm-eval metadata)."""
    names = {task.task for task in tasks}
    return [suite for suite in plugins.suites().values() if names & {task.task for task in suite.tasks}]


def include_paths() -> list[str]:
    """The folders of the plug-ins' lm-eval task YAML (lm-eval's include_path)."""
    paths = [str(suite.include_path) for suite in plugins.suites().values() if suite.include_path is not None]
    return list(dict.fromkeys(paths))  # several suites may share a folder


def check_task_names(tasks: list[SuiteTask]) -> None:
    """Every listed name is an lm-eval task or group (offline, from lm-eval's registry plus bai's suites); one that
    is not is named with the closest ones. Named suites are checked by the test suite instead (~10 s saved)."""
    if all(task.metric is not None for task in tasks):
        return
    names = [task.task for task in tasks]
    known = task_manager("{}", lm_eval_tasks=needs_lm_eval_tasks(names)).all_tasks
    for task in tasks:
        if task.task not in known:
            close = difflib.get_close_matches(task.task, known, n=3, cutoff=0.6)
            raise BaiError(f"evaluate.suite: {task.task!r} is not an lm-eval task"
                           + (f" (closest: {', '.join(close)})" if close else "")
                           + f"; or use a named suite: {', '.join(named_suites())}")


def lm_eval_leaves(names: list[str]) -> dict[str, dict]:
    """The YAML configs of the tasks `names` come down to (a group's subtasks, recursively), from lm-eval's index
    (offline: nothing is built or downloaded)."""
    index = task_manager("{}", lm_eval_tasks=needs_lm_eval_tasks(names)).task_index
    leaves: dict[str, dict] = {}

    def walk(name: str) -> None:
        if (entry := index.get(name)) is None or name in leaves:
            return
        config = entry.cfg or {}
        subtasks = config.get("task") if isinstance(config.get("task"), list) else None
        if subtasks is None:
            leaves[name] = config
        for subtask in subtasks or ():
            if isinstance(subtask, str):
                walk(subtask)

    for name in names:
        walk(name)
    return leaves


def check_unsafe_code(tasks: list[SuiteTask], settings: EvaluateSettings) -> None:
    """Tasks that execute the model's answers run only when the user said so, as lm-eval itself requires (asked
    here, before any model or dataset loads; lm-eval asks only once it has built the task)."""
    named = [task for task in tasks if task.metric is None]  # listed by name: their lm-eval config says
    configs = lm_eval_leaves([task.task for task in named]) if named else {}
    running = [task.task for task in tasks if task.runs_code] + sorted(
        name for name, config in configs.items() if config.get("unsafe_code"))
    if running and not settings.confirm_run_unsafe_code:
        raise BaiError(f"evaluate.suite: {', '.join(running)} executes the model's code; set "
                       "evaluate.confirm_run_unsafe_code: true to allow it, or leave the task out")


def hub_offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def check_datasets_offline(tasks: list[SuiteTask]) -> None:
    """Offline (HF_HUB_OFFLINE), a task whose dataset this machine's Hugging Face cache lacks cannot run: said in
    one line, naming the task and its dataset, before any model loads (lm-eval would fail deep in `datasets`)."""
    if not hub_offline():
        return
    own_data = {task.task for suite in plugins.suites().values() if suite.local_data for task in suite.tasks}
    names = [task.task for task in tasks if task.task not in own_data]
    if not names:
        return
    from huggingface_hub import constants

    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets")
    for task, config in lm_eval_leaves(names).items():
        path = config.get("dataset_path")
        if not isinstance(path, str) or Path(path).expanduser().exists():
            continue  # a task's own data (bai's suites, a custom dataset) or a local folder
        cached = (Path(constants.HF_HUB_CACHE) / f"datasets--{path.replace('/', '--')}").is_dir() or any(
            datasets_cache.glob(f"{path.replace('/', '___')}*"))
        if not cached:
            raise BaiError(f"evaluate.suite: {task} needs the hub dataset {path}, which this machine's Hugging Face "
                           "cache lacks, and the hub is off (HF_HUB_OFFLINE=1): run it once where the hub is "
                           "reachable (the cache keeps it), or leave the task out")


def offline_failure(error: BaseException, names: list[str]) -> BaiError | None:
    """lm-eval failing on what it fetches from the hub at run time (a dataset, the `evaluate` library's metric
    code such as MBPP+'s code_eval), as one line; None for any other error."""
    chain, seen = [], error
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for cause in chain:
        text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        if type(cause).__name__ == "OfflineModeIsEnabled" or "Couldn't reach" in text or \
                "Couldn't find a module script" in text:
            return BaiError(f"evaluate.suite {', '.join(names)}: lm-eval could not fetch what the task needs from "
                            f"the hub ({text[:200]}); on a machine without the hub, run it once where the hub is "
                            "reachable so the Hugging Face cache has it, or leave the task out")
    return None


def check_checkpoint(path: Path, source: str, settings: EvaluateSettings) -> None:
    """What lm-eval would fail on deep inside, said in one line before any model is loaded."""
    if not (path / "config.json").is_file():
        raise BaiError(f"{source}: no config.json; not a Hugging Face checkpoint folder")
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise BaiError(f"{source}: the checkpoint has no tokenizer (tokenizer.json, tokenizer.model or vocab.json); "
                       "lm-eval needs one to prompt and score it")
    if settings.apply_chat_template and not has_chat_template(path):
        raise BaiError(f"{source}: the tokenizer has no chat template; set evaluate.apply_chat_template: false "
                       "(bai eval --no-chat-template) to prompt it with plain text")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_args(path: Path, settings: EvaluateSettings) -> dict:
    """HFLM's arguments, the same for bai's run and the lm-eval command line."""
    args = {"pretrained": str(path)}
    if settings.backend == "vllm":  # vLLM places the copies and their shards on the GPUs itself
        args |= {"tensor_parallel_size": settings.tensor_parallel_size,
                 "data_parallel_size": settings.data_parallel_size}
    if settings.think_end_token:
        args["think_end_token"] = settings.think_end_token
    if settings.enable_thinking is not None:
        args["enable_thinking"] = settings.enable_thinking
    return args


def lm_eval_command(path: Path, settings: EvaluateSettings, tasks: list[SuiteTask], metadata: dict,
                    device: str) -> str:
    """The `lm-eval run` command line that reproduces these scores with lm-eval's own CLI."""
    launcher = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(settings.processes), "-m", "lm_eval"]
    parts = [*(launcher if settings.processes > 1 else ["lm-eval"]), "run", "--model", settings.backend,
             "--model_args", ",".join(f"{k}={v}" for k, v in model_args(path, settings).items()),
             "--tasks", *[task.task for task in tasks], *[a for p in include_paths() for a in ("--include_path", p)],
             "--batch_size", str(settings.batch_size), "--device", device]
    if metadata:
        parts += ["--metadata", json.dumps(metadata, sort_keys=True)]
    if settings.apply_chat_template:
        parts.append("--apply_chat_template")
    if settings.limit:
        parts += ["--limit", str(settings.limit)]
    if settings.confirm_run_unsafe_code:
        parts.append("--confirm_run_unsafe_code")
    if settings.max_gen_toks:
        parts += ["--gen_kwargs", f"max_gen_toks={settings.max_gen_toks}"]
    return shlex.join(parts)


@dataclass
class Generations:
    """Per lm-eval task: each generated answer's length in tokens and whether it ended before the limit."""

    tokens: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    finished: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))


def measured_hflm(path: Path, settings: EvaluateSettings, device: str, report=None):
    """lm-eval's HFLM, which also records each generation's length and whether it stopped by itself, and reports
    the answers generated so far as `report("evaluate", done, total)` (bai's bar, the Prefect progress artifact)."""
    from lm_eval.models.huggingface import HFLM

    from bai_core.completion import CompletionReader

    reader = CompletionReader.of_checkpoint(path)

    class MeasuredHFLM(HFLM):
        # lm-eval batches prompts by their generation settings, not by task, and reorders them; a prompt's text is
        # what ties a generated row back to its request (and so to its task).
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.generations = Generations()
            self._batch: list[str] = []
            self._rows: dict[str, tuple[int, bool]] = {}
            self._done = self._total = 0
            # what generate stops on (generation_config.json's eos ids, lm-eval's end-of-text and pad)
            self.stop_ids = reader.stop_ids | {self.eot_token_id, self.tokenizer.pad_token_id}

        def tok_batch_encode(self, strings, *args, **kwargs):
            self._batch = list(strings)
            return super().tok_batch_encode(strings, *args, **kwargs)

        def _model_generate(self, context, max_length, stop, **kwargs):
            output = super()._model_generate(context, max_length, stop, **kwargs)
            budget = max_length - context.shape[1]
            for prompt, row in zip(self._batch, output[:, context.shape[1]:].tolist()):
                self._rows[prompt] = self._measure(prompt, row, stop, budget)
            self._done += context.shape[0]
            if report is not None:
                report("evaluate", self._done, self._total)
            return output

        def _measure(self, prompt: str, row: list[int], stop: list[str], budget: int) -> tuple[int, bool]:
            """Tokens up to the model's first stop id or the first stop string; finished when it stopped within the
            budget with any think block (its prompt's or its own) closed: the rule the rewards use
            (`bai_core.completion`). (A batch runs until every row stops, so a row can go on past its own end.)"""
            ends = [i for i, token in enumerate(row) if token in self.stop_ids]
            n = ends[0] if ends else len(row)
            text = self.tokenizer.decode(row[:n], skip_special_tokens=False)
            cuts = [text.index(s) for s in stop if s and s in text]
            if cuts:
                text = text[:min(cuts)]
                n = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            stopped = bool(cuts) or (bool(ends) and n < budget)
            return n, stopped and reader.answer(prompt, text) is not None

        def generate_until(self, requests, disable_tqdm: bool = False):
            self._done, self._total = 0, len(requests)
            answers = super().generate_until(requests, disable_tqdm=disable_tqdm or report is not None)
            rows = [(request.task_name, *self._rows[request.args[0]]) for request in requests
                    if request.args[0] in self._rows]
            if self.world_size > 1:  # data-parallel (evaluate.processes): every rank's share, for rank 0 to report
                import torch.distributed as dist

                shares = [None] * self.world_size
                dist.all_gather_object(shares, rows)
                rows = [row for share in shares for row in share]
            for task, tokens, finished in rows:
                self.generations.tokens[task].append(tokens)
                self.generations.finished[task].append(finished)
            return answers

    return MeasuredHFLM(batch_size=settings.batch_size, device=device, **model_args(path, settings))


@functools.lru_cache(maxsize=8)
def task_manager(metadata: str, lm_eval_tasks: bool = True):
    """The task registry: the plug-ins' suites, plus lm-eval's own tasks when `lm_eval_tasks`. The plug-ins' index in
    a millisecond; lm-eval's ~14,700 take ~8 s, paid once per process and metadata, and only by a suite that names
    one of them (the demo suite does not)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_paths() or None, include_defaults=lm_eval_tasks,
                       metadata=json.loads(metadata) or None)


def needs_lm_eval_tasks(names: list[str]) -> bool:
    return not set(names) <= set(task_manager("{}", lm_eval_tasks=False).all_tasks)


def run_lm_eval(path: Path, settings: EvaluateSettings, tasks: list[SuiteTask], metadata: dict,
                device: str, report=None) -> tuple[dict, Generations]:
    """lm-eval's full results (samples included) and the generations' measurements."""
    import lm_eval

    if settings.backend == "vllm":  # lm-eval's own vLLM model; it does not say how long the answers were
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise BaiError("evaluate.backend vllm: vLLM is not installed here (pip install vllm), or use hf")
        model, generations = "vllm", Generations()
        arguments = {**model_args(path, settings), "batch_size": settings.batch_size}
    else:
        model = measured_hflm(path, settings, device, report)
        generations, arguments = model.generations, None
    names = [task.task for task in tasks]
    manager = task_manager(json.dumps(metadata, sort_keys=True), lm_eval_tasks=needs_lm_eval_tasks(names))
    with _quiet_git_probe(), _without_metadata_advice():
        try:
            results = lm_eval.simple_evaluate(
                model=model, model_args=arguments, tasks=names, task_manager=manager,
                limit=settings.limit, apply_chat_template=settings.apply_chat_template, log_samples=True,
                confirm_run_unsafe_code=settings.confirm_run_unsafe_code,
                gen_kwargs={"max_gen_toks": settings.max_gen_toks} if settings.max_gen_toks else None)
        except Exception as e:  # what the hub did not give, in one line; anything else as it is
            if (one_line := offline_failure(e, names)) is not None:
                raise one_line from None
            raise
    if results is None and int(os.environ.get("RANK", "0")) == 0:  # data-parallel: rank 0 alone gets them
        raise BaiError("lm-eval returned no results")
    return results, generations


class _MetadataAdvice(logging.Filter):
    """lm-eval's warning, for a task built from a custom dataset, that its kwargs "can be passed to --metadata":
    for the plug-ins' tasks bai passes them already (`Suite.metadata`), so the advice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(message.startswith(f"{task.task}: Custom kwargs can be passed to `--metadata`")
                       for suite in plugins.suites().values() for task in suite.tasks)


@contextmanager
def _without_metadata_advice() -> Iterator[None]:
    logger, advice = logging.getLogger("lm_eval.api.task"), _MetadataAdvice()
    logger.addFilter(advice)
    try:
        yield
    finally:
        logger.removeFilter(advice)


@contextmanager
def _quiet_git_probe() -> Iterator[None]:
    """lm-eval records the working directory's git commit with `git describe`, whose `fatal: not a git repository`
    outside a checkout goes straight to the user's terminal and run log. The same probe, with its stderr silenced
    (lm-eval's value is kept: the commit, or None)."""
    import lm_eval.evaluator as evaluator

    original = evaluator.get_git_commit_hash

    def quiet() -> str | None:
        try:
            return subprocess.check_output(["git", "describe", "--always"], stderr=subprocess.DEVNULL).strip().decode()
        except (subprocess.CalledProcessError, OSError):
            return None

    evaluator.get_git_commit_hash = quiet
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original
