"""The BAI pipeline as a Prefect flow: fetch the three checkpoints, check the train inputs, merge stage 1, merge
stage 2, train the RL actor from the merge (when `train` is configured), score the chosen models with lm-eval (when
`evaluate` is configured), then publish a summary and tables of stages and scores to the UI.

Composition only: which stages run, where, from what, is the plan's (`bai_core/plan.py`); every stage is a task in
`tasks/`, and every task is a thin wrapper over `bai_core`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from bai.flows.dask_runner import task_runner
from bai.flows.trials import trial_line, tune_trials
from bai.tasks.artifacts import run_log, stop_signals_seen
from bai.tasks.evaluate import evaluate_model, prepare_evaluate, score_table
from bai.tasks.handoff import stage_on_machines, stage_on_pool
from bai.tasks.merge import fetch_checkpoint, merge_stage1, merge_stage2
from bai.tasks.source_build import build_source
from bai.tasks.storage import apply_credentials
from bai.tasks.train import prepare_train, train_actor
from bai.tasks.tune import prepare_tune
from bai_core import layout, plan, progress
from bai_core.config import ROLES, PipelineConfig
from bai_core.errors import BaiError
from bai_core.evaluation.config import EvaluateSettings
from bai_core.evaluation.stage import EvaluateStage, ScoredModel
from bai_core.merge.config import MergeSettings
from bai_core.rl.stage import TrainInputs, TrainStage
from bai_core.storage import open_store
from bai_core.tune.trial import trial_groups


class PipelineFailed(BaiError):
    """A stage failed; `rows` is the stage table up to and including the failure."""

    def __init__(self, message: str, rows: list[dict]):
        super().__init__(message)
        self.rows = rows


class _StageTable:
    def __init__(self, planned: list[str]):
        self.rows: list[dict] = []
        self.planned = planned

    def run(self, name: str, call: Callable, *args, output: Callable[[dict], str] = lambda r: "") -> dict:
        progress.stage_started(name)
        started = time.perf_counter()
        state = call(*args, return_state=True)
        seconds = round(time.perf_counter() - started, 3)
        if not state.is_completed():
            error = state.result(raise_on_failure=False)
            self.failed(name, seconds, str(error) if isinstance(error, BaseException) else state.message or state.name)
        result = state.result()
        # Cached, Adopted or Completed: how the stage had its result (tasks/stage.py)
        self.finished(name, state.name, seconds, output(result))
        return result

    def finished(self, name: str, state: str, seconds: float, output: str, announce: bool = True) -> None:
        if announce:  # a stage run elsewhere (a trial of the study) said so itself
            progress.stage_finished(name, state, seconds, output)
        self.rows.append({"stage": name, "state": state, "seconds": seconds, "output": output})

    def failed(self, name: str, seconds: float, message: str) -> None:
        progress.stage_finished(name, "Failed", seconds, message)
        self.rows.append({"stage": name, "state": "Failed", "seconds": seconds, "output": "", "error": message})
        self.rows += [{"stage": s, "state": "Not run", "seconds": 0.0, "output": ""}
                      for s in self.planned[self.planned.index(name) + 1:]]
        raise PipelineFailed(message, self.rows)

    def stopped(self) -> None:
        """A signal ended the run mid-stage (cancelled from the UI, SIGTERM, Ctrl-C): say where, in the log and the
        table. What the stage was writing was discarded on the way out."""
        where, name = progress.where(), progress.current_stage()
        get_run_logger().warning("stopped during %s; nothing partial was published; the next run resumes from the "
                                 "last finished stage", where or "start-up")
        if name is not None and name in self.planned:
            self.rows.append({"stage": name, "state": "Stopped", "seconds": 0.0, "output": "", "note": where})
            self.rows += [{"stage": s, "state": "Not run", "seconds": 0.0, "output": ""}
                          for s in self.planned[self.planned.index(name) + 1:]]

    def skip(self, name: str, why: str) -> None:
        progress.stage_finished(name, f"Skipped: {why}", None)
        self.rows.append({"stage": name, "state": "Skipped", "seconds": 0.0, "output": "", "note": why})


def run_name() -> str:
    """What tells runs apart in the UI's list: the config's name, the merge weights, the RL run and the suite in
    brief, the store, and a short hash of the whole config (runs that differ in any other setting differ there)."""
    config = flow_run.parameters["config"]
    if isinstance(config, dict):
        config = PipelineConfig.model_validate(config)
    return describe_run(config)


def describe_run(config: PipelineConfig) -> str:
    parts = [f"w, alpha tuned ({config.tune.trials} trials)" if config.tune else
             f"w={config.merge.instruct_weight:g} alpha={config.merge.alpha:g}"]
    if config.train is not None:
        parts.append(f"{config.train.algorithm} {config.train.steps} steps from {config.train.init}")
    if config.evaluate is not None:
        parts.append("scored on " + ",".join(config.evaluate.task_names))
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:6]
    return f"{config.name}: {', '.join(parts)} -> {config.storage.uri} [{digest}]"


@flow(name="bai-pipeline", flow_run_name=run_name)
def bai_pipeline(config: PipelineConfig) -> dict:
    """Fetch, merge stage 1, merge stage 2 (cached by content), and report. Returns the stage table and outputs."""
    with run_log(), stop_signals_seen():
        return _run_pipeline(config)


def _run_pipeline(config: PipelineConfig) -> dict:
    apply_credentials(config.storage)
    open_store(config.storage).check()
    planned = plan.plan_pipeline(config)
    table = _StageTable(list(planned.stages))
    try:
        for build in planned.builds:
            table.run(build.stage, build_source, build.stage, build.scheme, build.arguments, config.storage,
                      output=lambda r: r["shown"])
        refs = {role: table.run(f"fetch-{role}", fetch_checkpoint, role, getattr(config.models, role),
                                config.storage, output=lambda r: r["fingerprint"][:19])
                for role in ROLES}

        prepared = None
        if planned.runs("prepare-train"):  # bad train input fails here, before anything is merged
            prepared = table.run("prepare-train", prepare_train, config.train, refs, config.merge, config.storage,
                                 output=lambda r: f"{r['prompts']['rows']} prompts, {len(r['rewards'])} reward term(s)")
        else:
            table.skip("prepare-train", planned.skipped["prepare-train"])
        metadata = None
        if planned.runs("prepare-evaluate"):  # an unknown lm-eval task name fails here, before anything is merged
            carried = {name: config.carried_source(name) for name in planned.scored}
            metadata = table.run("prepare-evaluate", prepare_evaluate, config.evaluate,
                                 plan.checkpoint_sources(config), carried, config.storage,
                                 output=lambda r: "suite " + ", ".join(config.evaluate.task_names)
                                 + (f" ({shown})" if (shown := _metadata_shown(config, r)) else ""))
        else:
            table.skip("prepare-evaluate", planned.skipped["prepare-evaluate"])

        merge, trials = config.merge, None
        if config.tune is not None:  # the study's best weights make M_sft and M_bai
            trials, best = _tune(table, config, refs)
            merge = MergeSettings.model_validate({**merge.model_dump(mode="json"), "instruct_weight": best["w"],
                                                  "alpha": best["alpha"],
                                                  "groups": trial_groups(merge, best.get("groups") or {})})
        sft = table.run("merge-stage1", merge_stage1, refs["instruct"], refs["reasoning"], merge,
                        config.storage, output=lambda r: r["uri"])
        bai = table.run("merge-stage2", merge_stage2, refs["pretrained"], sft, merge, config.storage,
                        output=lambda r: r["uri"])
        actor = None
        if planned.runs("train"):
            actor = _train(table, config, planned.train, prepared, {"sft": sft, "bai": bai})
        else:
            table.skip("train", planned.skipped["train"])
        scores = {}
        if planned.runs("evaluate"):
            scores = _evaluate(table, config, planned, refs, {"sft": sft, "bai": bai}, actor, metadata)
        else:
            table.skip("evaluate", planned.skipped["evaluate"])
    except BaseException as e:
        if not isinstance(e, Exception):  # a signal, not an error
            table.stopped()
        raise
    finally:  # the UI gets the stage table whether the run succeeded or not
        _publish_table(table.rows, config)

    summary = {"name": config.name, "flow_run_id": str(flow_run.id), "stages": table.rows,
               "ran_on": f"{socket.gethostname()}:{os.getpid()}",  # the process that ran the flow (not a stage's)
               "outputs": {"sft": sft["uri"], "bai": bai["uri"],
                           **({"actor": actor["actor"], "metrics": actor["metrics"], "verdicts": actor["verdicts"]}
                              if actor else {}),
                           **({"scores": {name: {key: ref[key] for key in ("uri", "overall", "categories", "rows",
                                                                           "finished_share", "mean_answer_tokens",
                                                                           "lm_eval_command")}
                                          for name, ref in scores.items()}} if scores else {})},
               "inputs": refs,
               "merge": merge.model_dump(mode="json"),
               **({"trials": trials, "tune_best": best} if trials is not None else {})}
    _publish_summary(summary, config, merge)
    return summary


def _train(table: _StageTable, config: PipelineConfig, placement: plan.Placement, prepared: dict,
           merges: dict) -> dict:
    """The train stage: in this process (cached on its content key), or handed to `train.deployment`'s pool (one
    run per machine when there are several)."""
    settings = config.train
    init = plan.actor_init(settings.init, prepared["init"], merges)
    inputs = {**prepared, "init": init.model_dump()}

    def shown(ref: dict) -> str:
        verdict = ", ".join(ref["fired"]) + " detected" if ref["fired"] else "stable"
        return f"{ref['steps']} steps, {verdict}: {ref['actor']}"

    if placement.where == "here":
        return table.run("train", train_actor, inputs, settings, config.storage, output=shown)
    # On a pool, the result comes back through the store.
    stage = TrainStage(TrainInputs.model_validate(inputs), settings, config.storage)
    parameters = {"inputs": inputs, "settings": settings.model_dump(mode="json"),
                  "storage": config.storage.model_dump(mode="json")}
    if placement.where == "machines":  # one run per machine, meeting through the store
        return table.run("train", stage_on_machines, "train", placement.deployment, stage, parameters,
                         placement.machines, output=shown)
    return table.run("train", stage_on_pool, "train", placement.deployment, stage, parameters, output=shown)


def _evaluate(table: _StageTable, config: PipelineConfig, planned: plan.Plan, refs: dict, merges: dict,
              actor: dict | None, metadata: dict) -> dict:
    """One evaluate stage per scored model: in this process (cached on its content key), or handed to
    `evaluate.deployment`'s pool; then the run's scores as one table artifact."""
    settings, scores = config.evaluate, {}
    for name in planned.scored:
        model = plan.scored_model(name, refs, merges, actor).model_dump()
        shown = lambda r: f"overall {r['overall']:.3f}: {r['uri']}"  # noqa: E731
        if planned.evaluate.where == "pool":  # the scores come back through the store
            stage = EvaluateStage(ScoredModel.model_validate(model), settings, config.storage, metadata)
            parameters = {"model": model, "settings": settings.model_dump(mode="json"),
                          "storage": config.storage.model_dump(mode="json"), "metadata": metadata}
            scores[name] = table.run(f"evaluate-{name}", stage_on_pool, f"evaluate-{name}",
                                     planned.evaluate.deployment, stage, parameters, output=shown)
            continue
        scores[name] = table.run(f"evaluate-{name}", evaluate_model, model, settings, config.storage, metadata,
                                 output=shown)
    create_table_artifact(table=score_table(list(scores.values())), key=_artifact_key(config, "scores"),
                          description=f"BAI pipeline {config.name!r}: lm-eval scores")
    return scores


def _tune(table: _StageTable, config: PipelineConfig, refs: dict) -> tuple[list[dict], dict]:
    """The study (flows/trials.py: its trials at once on Dask, or one after another), a stage-table row per trial
    (a rerun finds finished trials Cached), and the trials as a table artifact. Returns the trials and the best."""
    dev_suite = lambda r: "dev suite " + ", ".join(EvaluateSettings.model_validate(r["dev"]).task_names)  # noqa: E731
    prepared = table.run("prepare-tune", prepare_tune, config, refs, output=dev_suite)
    runner = task_runner(config.tune.fanout)
    study = tune_trials.with_options(task_runner=runner) if runner is not None else tune_trials
    done, trials = study(config, refs, prepared), []
    for outcome in done["outcomes"]:
        name = f"trial-{outcome['trial']}"
        if "error" in outcome:
            table.failed(name, 0.0, outcome["error"])
        result = outcome["result"]
        table.finished(name, outcome["state"], outcome["seconds"], trial_line(result), announce=False)
        for pilot in outcome["pilots"]:
            table.finished(f"{name}-pilot-{pilot['rung']}", pilot["state"], pilot["seconds"], trial_line(pilot),
                           announce=False)
        trials.append({"trial": outcome["trial"], **result, "merge_value": result["value"], "value": outcome["value"],
                       "pilots": outcome["pilots"], "pruned_at": outcome["pruned_at"], "state": outcome["state"]})
    best = done["best"]
    create_table_artifact(table=[{"trial": t["trial"], "w": round(t["w"], 4), "alpha": round(t["alpha"], 4),
                                  "value": round(t["value"], 4), "RL steps": t["pilots"][-1]["steps"] if t["pilots"]
                                  else 0, "pruned": "" if t["pruned_at"] is None else f"at rung {t['pruned_at']}",
                                  "best": "yes" if t["trial"] == best["trial"] else ""}
                                 for t in trials],
                          key=_artifact_key(config, "trials"),
                          description=f"bai tune {config.name!r}: each trial's weights and its value on the dev split")
    return trials, best


def _metadata_shown(config: PipelineConfig, metadata: dict) -> str:
    """The suite's resolved metadata in a few words (the demo suite: which family's eval split)."""
    from bai_core.evaluation.harness import plugin_suites, suite_tasks

    return "; ".join(filter(None, (s.shown(metadata) for s in plugin_suites(suite_tasks(config.evaluate)))))


def _artifact_key(config: PipelineConfig, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{config.name}-{what}".lower())


def _publish_table(rows: list[dict], config: PipelineConfig) -> None:
    table = [{"stage": row["stage"], "state": row["state"], "time": f"{row['seconds']:.1f} s",
              "output or note": row.get("output") or row.get("note") or row.get("error", "")} for row in rows]
    create_table_artifact(table=table,
                          key=_artifact_key(config, "stages"),
                          description=f"BAI pipeline {config.name!r}: stages, states, timings and outputs")


def _publish_summary(summary: dict, config: PipelineConfig, merge: MergeSettings) -> None:
    lines = [
        f"# BAI pipeline `{config.name}`",
        "",
        f"- stage 1: `{merge.formula('sft')}`",
        f"- stage 2: `{merge.formula('bai')}`",
        f"- dtype `{merge.dtype}`, tokenizer from `{merge.tokenizer_from}`",
        "",
        "| input | source | fingerprint |",
        "|---|---|---|",
        *[f"| {role} | `{ref['source']}` | `{ref['fingerprint'][:23]}` |" for role, ref in summary["inputs"].items()],
        "",
        "| output | URI |",
        "|---|---|",
        f"| M_sft | `{summary['outputs']['sft']}` |",
        f"| M_bai | `{summary['outputs']['bai']}` |",
        *([f"| RL actor | `{summary['outputs']['actor']}` |",
           f"| metrics | `{summary['outputs']['metrics']}` |",
           f"| verdicts | `{summary['outputs']['verdicts']}` |"] if "actor" in summary["outputs"] else []),
    ]
    create_markdown_artifact("\n".join(lines), key=_artifact_key(config, "summary"), description="BAI pipeline summary")
    uri = open_store(config.storage).put_text(layout.run_summary(config.name, summary["flow_run_id"]),
                                              json.dumps(summary, indent=2) + "\n")
    get_run_logger().info("run summary: %s", uri)
