"""The evaluate stage (no Prefect), an `ArtifactStage` like the merges and the train stage:

- `prepare_evaluate`: what can be checked before any model is merged or loaded (task names, a suite's metadata).
- `EvaluateStage`: its key hashes the model's fingerprint, the suite's definition, the settings, lm-eval's version
  and bai's scoring code; its build scores with lm-eval and publishes the results under evaluations/<key>/.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from pydantic import BaseModel

from bai_core import layout, progress
from bai_core.artifact_stage import ArtifactStage
from bai_core.context import context_warning
from bai_core.evaluation import harness, parallel, scores
from bai_core.evaluation.config import EvaluateSettings
from bai_core.fingerprint import cache_dir, code_version, fingerprint_folder
from bai_core.io.atomic import AtomicFolder
from bai_core.io.tables import csv_text
from bai_core.sources import fetch, local_model
from bai_core.storage import ArtifactStore, StorageConfig, open_store

SCORING_CODE = ("harness.py", "scores.py", "../completion.py")  # editing these makes cached scores stale
TABLE_COLUMNS = ("task", "stands_for", "category", "metric", "score", "stderr", "examples", "finished_share",
                 "mean_answer_tokens")


class ScoredModel(BaseModel):
    """A model to score: a fetched checkpoint (by source) or an artifact of the store (a merge, the RL actor)."""

    name: str  # pretrained, instruct, reasoning, sft, bai, actor, or the source itself
    source: str  # the source, or the artifact's URI
    fingerprint: str
    store_key: str | None = None  # the artifact's key in the store, to materialize it


class EvalRef(BaseModel):
    key: str
    uri: str  # evaluations/<key>/ in the store
    model: str
    source: str
    fingerprint: str
    suite: list[str]
    rows: list[dict]
    overall: float
    categories: dict[str, float]
    finished_share: float | None
    mean_answer_tokens: float | None
    settings: dict
    metadata: dict
    device: str
    lm_eval_version: str
    lm_eval_command: str
    seconds: float


def suite_metadata(settings: EvaluateSettings, sources: list[str]) -> dict:
    """lm-eval metadata the scored plug-in suites resolve from the run's sources (the demo suite: which family's eval
    split, {"size", "seed"}); {} when no scored task needs any."""
    metadata = {}
    for suite in harness.plugin_suites(harness.suite_tasks(settings)):
        metadata |= suite.metadata(settings, sources)
    return metadata


def prepare_evaluate(settings: EvaluateSettings, sources: list[str], carried: dict[str, str] | None = None,
                     storage: StorageConfig | None = None) -> dict:
    """Check the suite and resolve its metadata (the demo split) before anything is merged or loaded.
    `carried`: each scored model's name and the source whose config.json it will carry (fetched from `storage`'s
    endpoint), to warn where max_gen_toks exceeds its context."""
    tasks = harness.suite_tasks(settings)
    harness.check_task_names(tasks)
    harness.check_unsafe_code(tasks, settings)
    harness.check_datasets_offline(tasks)
    if not settings.deployment:  # scored here: say now when this machine cannot
        parallel.check_processes(settings, settings.device or harness.default_device())
    for name, source in (carried or {}).items() if settings.max_gen_toks else ():
        folder = fetch(source, storage).path
        if warning := context_warning(folder, f"evaluate {name}", settings.max_gen_toks):
            progress.note(warning, warning=True)
    return suite_metadata(settings, sources)


def scoring_code_version() -> str:
    return code_version(Path(__file__).parent, SCORING_CODE)


def suite_definition(settings: EvaluateSettings, metadata: dict) -> dict:
    """The tasks, their primary metrics and bai's own task files (lm-eval's are covered by its version)."""
    files = hashlib.sha256()
    for folder in map(Path, harness.include_paths()):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in (".yaml", ".py"):
                files.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    tasks = [[t.task, t.metric, t.category] for t in harness.suite_tasks(settings)]
    return {"tasks": tasks, "metadata": metadata, "files": files.hexdigest()[:16]}


class EvaluateStage(ArtifactStage[EvalRef]):
    """Score one model with lm-eval and publish lm-eval's results JSON, its samples, and the flat table
    (scores.json, scores.csv) under evaluations/<key>/. `report(phase, done, total)` hears of the answers
    generated so far."""

    doing = "scoring"

    def __init__(self, model: ScoredModel, settings: EvaluateSettings, storage: StorageConfig, metadata: dict,
                 report=progress.report):
        self.model, self.settings, self.storage, self.metadata, self.report = model, settings, storage, metadata, report
        self.store = open_store(storage)

    def compute_key(self) -> str:
        import lm_eval

        # where it runs (device, deployment, how many copies share the questions) and how the models were named do
        # not change a score; tensor_parallel_size splits each matrix product, so it stays in
        ignored = {"models", "demo_family", "device", "deployment", "processes", "data_parallel_size"}
        payload = {"model": self.model.fingerprint, "suite": suite_definition(self.settings, self.metadata),
                   "settings": self.settings.model_dump(mode="json", exclude=ignored),
                   "lm_eval": lm_eval.__version__, "code": scoring_code_version()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def folder(self) -> str:
        return layout.evaluation_folder(self.key)

    def recorded(self, marker: dict) -> EvalRef:
        return EvalRef.model_validate(marker["result"])

    def build(self) -> EvalRef:
        return _evaluate(self.store, self.key, self.folder(), self.model, self.settings, self.storage, self.metadata,
                         self.report)


def _evaluate(store: ArtifactStore, key: str, folder: str, model: ScoredModel, settings: EvaluateSettings,
              storage: StorageConfig, metadata: dict, report) -> EvalRef:
    import lm_eval

    path = local_model(model.source, model.fingerprint, storage, model.store_key)
    harness.check_checkpoint(path, model.source, settings)
    tasks = harness.suite_tasks(settings)
    device = settings.device or harness.default_device()
    parallel.check_processes(settings, device)
    progress.note(f"scoring {model.name} on {', '.join(t.task for t in tasks)} with lm-eval ({device})")
    started = time.perf_counter()
    if settings.processes > 1:
        results, generations = parallel.score_on_processes(path, settings, metadata,
                                                           cache_dir() / "evaluations" / key[:24], timeout_s=24 * 3600)
    else:
        results, generations = harness.run_lm_eval(path, settings, tasks, metadata, device, report)
    rows = scores.task_rows(tasks, results, generations)
    ref = EvalRef(key=key, uri=store.uri(folder), model=model.name, source=model.source,
                  fingerprint=model.fingerprint, suite=[t.task for t in tasks], rows=rows, **scores.summary(rows),
                  settings=settings.model_dump(mode="json", exclude={"models", "deployment"}), metadata=metadata,
                  device=device, lm_eval_version=lm_eval.__version__,
                  lm_eval_command=harness.lm_eval_command(path, settings, tasks, metadata, device),
                  seconds=round(time.perf_counter() - started, 1))
    with AtomicFolder(store.local_path(folder), overwrite=True) as staging:
        _write_results(staging.path, results, ref)
    store.publish(folder, {"cache_key": key, "stage": "evaluate", "fingerprint": fingerprint_folder(
        store.local_path(folder)), "result": ref.model_dump(mode="json")})
    progress.note(score_line(ref))
    return ref


def score_line(ref: EvalRef) -> str:
    """A model's scores in a line: overall, each task's primary metric, answer length and finished share."""
    tasks = ", ".join(f"{row['task']} {row['score']:.3f}" for row in ref.rows)
    line = f"scores of {ref.model}: overall {ref.overall:.3f} ({tasks})"
    if ref.mean_answer_tokens is not None:
        line += f"; answers {ref.mean_answer_tokens:.1f} tokens, {ref.finished_share:.0%} finished"
    return line


def _write_results(folder: Path, results: dict, ref: EvalRef) -> None:
    """lm-eval's results JSON and samples as lm-eval writes them, and bai's flat table (JSON and CSV)."""
    from lm_eval.utils import handle_non_serializable

    samples = results.pop("samples", {})
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=handle_non_serializable) + "\n")
    for task, rows in samples.items():
        lines = (json.dumps(row, default=handle_non_serializable) for row in rows)
        (folder / f"samples_{task}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "scores.json").write_text(ref.model_dump_json(indent=2) + "\n")
    (folder / "scores.csv").write_text(csv_text(ref.rows, list(TABLE_COLUMNS)))
