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
