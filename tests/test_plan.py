"""The pipeline's plan as data (bai_core/plan.py): what runs, where, from what; read without Prefect."""

from __future__ import annotations

from bai_core import plan
from bai_core.config import PipelineConfig

MODELS = {role: f"demo://test/{role}" for role in ("pretrained", "instruct", "reasoning")}


def config(**sections) -> PipelineConfig:
    return PipelineConfig.model_validate({"name": "p", "models": MODELS, **sections})


def test_a_merge_only_config_plans_the_family_fetches_and_merges_and_says_why_the_rest_is_skipped():
    planned = plan.plan_pipeline(config())
    assert planned.stages == ("demo-family-test", "fetch-pretrained", "fetch-instruct", "fetch-reasoning",
                              "prepare-train", "prepare-evaluate", "merge-stage1", "merge-stage2", "train", "evaluate")
    assert planned.skipped == {"prepare-train": "not configured (config.train)",
                               "train": "not configured (config.train)",
                               "prepare-evaluate": "not configured (config.evaluate)",
                               "evaluate": "not configured (config.evaluate)"}
    assert planned.train is None and planned.evaluate is None and planned.scored == ()


def test_each_family_a_run_names_is_built_once_and_synthetic_weights_need_no_build():
    two_seeds = config(models={**MODELS, "reasoning": "demo://test/reasoning@1"},
                       train={"init": "bai", "reward": [{"model": "demo://test/reward"}], "prompts": "demo://test/rl"})
    assert [(b.stage, b.arguments) for b in plan.plan_pipeline(two_seeds).builds] == [
        ("demo-family-test", {"size": "test", "seed": 0}), ("demo-family-test", {"size": "test", "seed": 1})]
    synthetic = config(models={role: f"demo://synthetic/{role}" for role in MODELS})
    assert plan.plan_pipeline(synthetic).builds == ()


def test_where_train_and_evaluate_run_and_what_is_scored():
    settings = {"init": "bai", "reward": [{"verifiable": "arithmetic"}], "prompts": "demo://test/rl"}
    here = plan.plan_pipeline(config(train=settings, evaluate={"suite": "demo"}))
    assert here.train == plan.Placement("here") and here.evaluate == plan.Placement("here")
    assert here.scored == ("actor",) and here.stages[-2:] == ("train", "evaluate-actor") and here.skipped == {}
    pool = plan.plan_pipeline(config(train={**settings, "deployment": "bai-train/gpu"},
                                     evaluate={"suite": "demo", "deployment": "bai-evaluate/gpu",
                                               "models": ["bai", "actor"]}))
    assert pool.train == plan.Placement("pool", "bai-train/gpu")
    assert pool.evaluate == plan.Placement("pool", "bai-evaluate/gpu") and pool.scored == ("bai", "actor")
    machines = plan.plan_pipeline(config(train={**settings, "deployment": "bai-train/gpu",
                                                "launch": {"machines": 2}}))
    assert machines.train == plan.Placement("machines", "bai-train/gpu", 2)


def test_a_machine_that_joins_the_train_stage_does_not_score():
    settings = {"init": "bai", "reward": [{"verifiable": "arithmetic"}], "prompts": "demo://test/rl",
                "launch": {"machines": 2, "machine_rank": 1, "main_address": "10.0.0.1"}}
    planned = plan.plan_pipeline(config(train=settings, evaluate={"suite": "demo"}))
    assert planned.skipped == {"evaluate": "machine 1 of 2 joined the train stage; machine 0 scores"}
    assert not planned.runs("evaluate") and planned.runs("train")


def test_the_actor_starts_from_this_runs_merge_or_what_prepare_train_fetched_and_scored_models_come_from_the_store():
    merges = {"bai": {"uri": "s3://b/merges/bai-k", "fingerprint": "sha256:f", "key": "k" * 24, "stage": "bai"}}
    init = plan.actor_init("bai", None, merges)
    assert (init.source, init.merge_key, init.merge_stage) == ("s3://b/merges/bai-k", "k" * 24, "bai")
    fetched = {"name": "reasoning", "source": "demo://test/reasoning", "fingerprint": "sha256:r"}
    assert plan.actor_init("reasoning", fetched, merges).merge_key is None
    actor = {"actor": "s3://b/train/a/actor", "fingerprint": "sha256:a", "key": "a" * 30}
    assert plan.scored_model("actor", {}, merges, actor).store_key == f"train/{'a' * 24}/actor"
    assert plan.scored_model("bai", {}, merges, None).store_key == f"merges/bai-{'k' * 24}"
    ref = {"role": "instruct", "source": "demo://test/instruct", "fingerprint": "sha256:i"}
    assert plan.scored_model("instruct", {"instruct": ref}, merges, None).store_key is None


def test_a_tuned_run_scores_its_trials_before_the_merges_that_take_the_best():
    planned = plan.plan_pipeline(config(evaluate={"suite": "demo"}, tune={"trials": 3, "w": 0.5}))
    assert planned.stages[planned.stages.index("prepare-evaluate") + 1:planned.stages.index("train")] == (
        "prepare-tune", "trial-0", "trial-1", "trial-2", "merge-stage1", "merge-stage2")
    assert "trial-0" not in plan.plan_pipeline(config()).stages
