"""The bai-gpu pool's base job template (infra/k8s-gpu-base-job-template.json), rendered for a flow run by
prefect-kubernetes' own worker configuration, is a valid batch/v1 Job under the Kubernetes schema, checked offline
(kubernetes-validate ships the schemas). No cluster and no Prefect server: the API address below is never called."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

TEMPLATE = Path(__file__).parents[1] / "infra" / "k8s-gpu-base-job-template.json"


def render(values: dict) -> dict:
    """The Job manifest a Kubernetes worker would submit for a flow run of a deployment with these job variables."""
    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = json.loads(TEMPLATE.read_text())
    config = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(template, values))
    config.prepare_for_flow_run(FlowRun(flow_id=uuid.uuid4(), name="bai-gpu-check"))
    return config.job_manifest


def validate(manifest: dict) -> None:
    # strict: a field the schema does not know (a typo, or a Job field put in the pod spec) is an error, as
    # `kubectl apply --validate=strict` makes it one.
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


def test_the_variables_are_a_json_schema_whose_defaults_it_accepts():
    variables = json.loads(TEMPLATE.read_text())["variables"]
    jsonschema.Draft7Validator.check_schema(variables)
    defaults = {name: spec["default"] for name, spec in variables["properties"].items() if "default" in spec}
    jsonschema.Draft7Validator(variables).validate(defaults)


@pytest.mark.parametrize("values", [
    {},
    {"gpus": 4, "cpu": "32", "memory": "256Gi", "node_selector": {"nvidia.com/gpu.product": "H100"},
     "service_account_name": "bai", "namespace": "training", "image": "registry.example/bai:1",
     "env": {"BAI_CACHE_DIR": "/cache"}, "labels": {"team": "post-training"}},
], ids=["defaults", "overridden"])
def test_the_rendered_job_is_valid_kubernetes_and_asks_for_the_gpus(values):
    manifest = render({"command": "prefect flow-run execute", **values})
    validate(manifest)
    pod = manifest["spec"]["template"]["spec"]
    [container] = pod["containers"]
    gpus = values.get("gpus", 1)
    assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["restartPolicy"] == "Never" and manifest["spec"]["backoffLimit"] == 0  # a failed stage is not rerun
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert pod["nodeSelector"] == values.get("node_selector", {})
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env.items() >= values.get("env", {}).items()


def test_the_check_refuses_a_job_field_in_the_pod_spec():
    """The mistake this template once had: parallelism/completions are Job fields, not pod fields."""
    manifest = render({"command": "prefect flow-run execute"})
    manifest["spec"]["template"]["spec"]["parallelism"] = 1
    with pytest.raises(kubernetes_validate.ValidationError, match="parallelism"):
        validate(manifest)
