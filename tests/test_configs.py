"""Every shipped config, and every config embedded in prefect.yaml, is a valid PipelineConfig."""

from pathlib import Path

import pytest
import yaml

from bai_core.config import PipelineConfig, load_pipeline_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    assert load_pipeline_config(path).models.pretrained


def test_prefect_yaml_deployment_parameters_validate():
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = set()
    for deployment in project["deployments"]:
        names.add(deployment["name"])
        assert "schedules" in deployment
        if deployment["entrypoint"] in ("flows/train.py:bai_train", "flows/evaluate.py:bai_evaluate"):
            # their inputs come from the pipeline that hands the stage off
            assert deployment["work_pool"]["name"] == "bai-gpu"
            continue
        PipelineConfig.model_validate(deployment["parameters"]["config"])
        assert deployment["work_pool"]["name"] == "bai-cpu"
    assert names == {"demo", "gpu", "alpha-sweep", "compare"}


def test_run_names_tell_apart_runs_that_differ_only_in_train_or_evaluate_settings():
    from bai.flows.pipeline import describe_run

    config = load_pipeline_config(REPO / "configs" / "demo.yaml")
    longer = load_pipeline_config(REPO / "configs" / "demo.yaml", ["train.steps=8"])
    scored = load_pipeline_config(REPO / "configs" / "demo.yaml", ["evaluate.limit=20"])
    names = [describe_run(c) for c in (config, longer, scored)]
    assert names[0].startswith("demo: w=0.5 alpha=0.5, grpo 150 steps from bai, scored on demo -> bai-artifacts [")
    assert "grpo 8 steps" in names[1]
    assert len(set(names)) == 3  # evaluate.limit shows only in the config hash, which differs
    assert describe_run(load_pipeline_config(REPO / "configs" / "demo.yaml")) == names[0]  # stable


def test_a_detector_is_named_as_the_command_line_names_it_too():
    """`bai diagnose --fail-on hockey-stick` and `train.abort_on: [hockey_stick]`: either spelling, one setting."""
    from bai_core.rl.config import TrainSettings

    dashed = TrainSettings(reward=[{"verifiable": "arithmetic"}], prompts="demo://test/rl",
                           abort_on=["hockey-stick", "collapse"])
    assert dashed.abort_on == ["hockey_stick", "collapse"]
    assert dashed == TrainSettings(reward=[{"verifiable": "arithmetic"}], prompts="demo://test/rl",
                                   abort_on=["hockey_stick", "collapse"])


def test_a_size_that_ships_no_family_still_has_its_prompts_and_eval_split():
    """demo://tiny/rl and the demo suite at size tiny take seed 0, as demo://tiny/<member> does (no KeyError)."""
    from bai_core.demo.plugin import parse_demo
    from bai_core.demo.suites.bai_demo.utils import eval_split
    from bai_core.rl.prompts import load_prompts

    assert parse_demo("demo://tiny/instruct") == ("tiny", "instruct", 0)
    assert load_prompts("demo://tiny/rl").rows == load_prompts("demo://tiny/rl@0").rows
    assert len(eval_split("tiny")["test"]) == 16
