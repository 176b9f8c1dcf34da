"""End to end as users run it: a real Prefect server, a process work pool, deployments from prefect.yaml, a worker,
deployment runs triggered from the CLI, artifacts checked in S3. The alpha sweep exercises the pool hand-off
(each point is a child deployment run)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.services import BIN, api, stop

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e  # a server, a work pool, deployments and a worker: the slowest kind


def prefect(*args: str, env: dict) -> str:
    result = subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def wait_final(api_url: str, flow_run_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api(api_url, f"/flow_runs/{flow_run_id}")
        if run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} not finished after {timeout} s")


@pytest.fixture(scope="module")
def deployed(prefect_api, s3_service, tmp_path_factory):
    """The process pool, every deployment in prefect.yaml, and a worker polling the pool."""
    env = {**os.environ, "BAI_PROJECT_DIR": str(REPO),
           "BAI_CACHE_DIR": str(tmp_path_factory.mktemp("worker-cache"))}
    prefect("work-pool", "create", "bai-cpu", "--type", "process", env=env)
    # The CPU-only set-up docs/deploying.md walks through: the CPU deployments registered, the GPU ones skipped.
    cpu_only = subprocess.run([str(REPO / "infra" / "deploy.sh")], capture_output=True, text=True, env=env,
                              timeout=300)
    assert cpu_only.returncode == 0, cpu_only.stdout + cpu_only.stderr
    assert all(name in cpu_only.stdout for name in (
        "bai-pipeline/demo", "bai-sweep/alpha-sweep", "bai-compare/compare"))
    assert "no bai-gpu work pool, so bai-train/gpu and bai-evaluate/gpu are not registered" in cpu_only.stdout
    # A process pool standing in for the Kubernetes GPU pool: the hand-off is the same, only the infrastructure differs.
    prefect("work-pool", "create", "bai-gpu", "--type", "process", env=env)
    out = subprocess.run([str(REPO / "infra" / "deploy.sh")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(name in out.stdout for name in ("bai-pipeline/demo", "bai-sweep/alpha-sweep", "bai-train/gpu",
                                               "bai-evaluate/gpu", "bai-compare/compare"))
    logs = tmp_path_factory.mktemp("worker")
    workers = [subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", pool], cwd=REPO, env=env,
                                stdout=open(logs / f"{pool}.log", "w"), stderr=subprocess.STDOUT)
               for pool in ("bai-cpu", "bai-gpu")]
    try:
        yield env
    finally:
        for worker in workers:  # both told at once, then waited for
            worker.terminate()
        for worker in workers:
            stop(worker)
        # A minute or so after its workers stop, the server marks a pool NOT_READY: a background write that can meet
        # later tests' writes on the session's SQLite database ("database is locked"). The pools are this module's.
        for pool in ("bai-cpu", "bai-gpu"):
            api(prefect_api, f"/work_pools/{pool}", method="DELETE")


def trigger(deployment: str, params: dict, env: dict) -> str:
    out = prefect("deployment", "run", deployment, "--params", json.dumps(params), env=env)
    return re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)


def demo_config(storage_uri: str, name: str) -> dict:
    return {"name": name, "storage": {"uri": storage_uri},
            "models": {role: f"demo://synthetic/{role}" for role in ("pretrained", "instruct", "reasoning")}}


def s3_keys(s3_service, uri: str) -> set[str]:
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    pages = s3_service.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"].removeprefix(prefix + "/") for page in pages for o in page.get("Contents", [])}


def test_deployment_run_by_a_worker_publishes_to_s3(deployed, prefect_api, s3_service, s3_prefix, tmp_path):
    from bai.flows.pipeline import bai_pipeline
    from bai_core.config import PipelineConfig

    flow_run_id = trigger("bai-pipeline/demo", {"config": demo_config(s3_prefix, "e2e")}, deployed)
    run = wait_final(prefect_api, flow_run_id)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    keys = s3_keys(s3_service, s3_prefix)
    # The same config run here, into a local store: the worker's S3 objects hold the same merges, byte for byte,
    # under the same keys.
    local_store = tmp_path / "local"
    bai_pipeline(PipelineConfig(**demo_config(str(local_store), "e2e")))
    bucket, prefix = s3_prefix.removeprefix("s3://").split("/", 1)
    for stage in ("sft", "bai"):
        published = {k.split("/")[1] for k in keys
                     if k.startswith(f"merges/{stage}-") and k.endswith("_bai_complete.json")}
        assert len(published) == 1, keys
        folder = f"merges/{published.pop()}"
        assert {f"{folder}/model.safetensors", f"{folder}/config.json", f"{folder}/bai_merge.json"} <= keys
        for name in ("model.safetensors", "config.json"):
            body = s3_service.client().get_object(Bucket=bucket, Key=f"{prefix}/{folder}/{name}")["Body"].read()
            assert body == (local_store / folder / name).read_bytes(), f"{folder}/{name}"
    summary_key = f"runs/e2e/{flow_run_id}.json"
    assert summary_key in keys
    artifacts = api(prefect_api, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    assert {"table", "markdown", "progress"} <= {a["type"] for a in artifacts}


def test_sweep_hands_each_point_to_a_deployment_run(deployed, prefect_api, s3_service, s3_prefix):
    from bai_core.storage import ArtifactStore

    parent_id = trigger("bai-sweep/alpha-sweep", {"config": demo_config(s3_prefix, "sweep"), "alphas": [0.3, 0.6]},
                        deployed)
    run = wait_final(prefect_api, parent_id, timeout=300)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    children = api(prefect_api, "/flow_runs/filter",
                   {"flow_runs": {"parent_flow_run_id": {"operator": "and_", "any_": [parent_id]}}})
    # Runs are named so a person can tell them apart: config name, weights, store, a hash of the whole config.
    names = sorted(child["name"] for child in children)
    assert [name.rsplit(" [", 1)[0] for name in names] == [f"sweep-alpha{a}: w=0.5 alpha={a} -> {s3_prefix}"
                                                            for a in ("0.3", "0.6")]
    assert all(child["state"]["type"] == "COMPLETED" for child in children)
    store = ArtifactStore(s3_prefix)
    states = {}
    for child in children:
        name = child["parameters"]["config"]["name"]
        summary = json.loads(store.get_text(f"runs/{name}/{child['id']}.json"))
        states[name] = {row["stage"]: row["state"] for row in summary["stages"]}
    # Stage 1 does not depend on alpha: merged by the first point, cached for the second.
    assert states["sweep-alpha0.3"]["merge-stage1"] == "Completed"
    assert states["sweep-alpha0.6"]["merge-stage1"] == "Cached"
    assert states["sweep-alpha0.6"]["merge-stage2"] == "Completed"


def test_train_and_evaluate_stages_are_handed_to_the_gpu_pool(deployed, prefect_api, s3_service, s3_prefix,
                                                              demo_family):
    """The pipeline (on bai-cpu) hands its train stage to bai-train/gpu and its scoring to bai-evaluate/gpu (on
    bai-gpu) and gets the actor and the scores back through S3. The training runs on two "machines": two runs of
    bai-train/gpu at once, one rank each, meeting through S3 (`main_address: auto`). Synthetic models keep the merges
    quick; the reward model is the test family's, uploaded to S3."""
    from bai_core.storage import ArtifactStore

    client = s3_service.client()
    bucket, prefix = s3_prefix.removeprefix("s3://").split("/", 1)
    for path in (demo_family.root / "reward").iterdir():
        if path.is_file() and not path.name.startswith("_"):
            client.upload_file(str(path), bucket, f"{prefix}/inputs/reward/{path.name}")
    client.put_object(Bucket=bucket, Key=f"{prefix}/inputs/prompts.jsonl",
                      Body="".join(json.dumps({"prompt": f"Ann has {n} pens and gets 2 more. How many now?"}) + "\n"
                                   for n in range(10, 30)).encode())
    config = {**demo_config(s3_prefix, "handoff"),
              "train": {"reward": [{"model": f"{s3_prefix}/inputs/reward"}], "prompts": f"{s3_prefix}/inputs/prompts.jsonl",
                        "steps": 2, "batch_size": 4, "generations": 2, "max_completion_length": 8, "save_every": 1,
                        "deployment": "bai-train/gpu",
                        "launch": {"processes": 1, "machines": 2, "main_address": "auto"}},
              "evaluate": {"models": ["actor"], "demo_family": "test@0", "limit": 4, "max_gen_toks": 8,
                           "deployment": "bai-evaluate/gpu"}}
    parent_id = trigger("bai-pipeline/demo", {"config": config}, deployed)
    run = wait_final(prefect_api, parent_id, timeout=300)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    children = api(prefect_api, "/flow_runs/filter",
                   {"flow_runs": {"parent_flow_run_id": {"operator": "and_", "any_": [parent_id]}}})
    assert sorted(child["name"] for child in children) == ["evaluate actor on demo",
                                                           "train grpo from bai: 2 steps (machine 0 of 2)",
                                                           "train grpo from bai: 2 steps (machine 1 of 2)"]
    for child in children:
        deployment = api(prefect_api, f"/deployments/{child['deployment_id']}")
        assert deployment["name"] == "gpu" and child["work_pool_name"] == "bai-gpu"
        assert child["state"]["type"] == "COMPLETED"
    summary = json.loads(ArtifactStore(s3_prefix).get_text(f"runs/handoff/{parent_id}.json"))
    actor = summary["outputs"]["actor"]
    states = {row["stage"]: row["state"] for row in summary["stages"]}
    assert actor.startswith(f"{s3_prefix}/train/") and states["train"] == states["evaluate-actor"] == "Completed"
    scores = summary["outputs"]["scores"]["actor"]
    assert scores["uri"].startswith(f"{s3_prefix}/evaluations/") and scores["rows"][0]["examples"] == 4
    keys = s3_keys(s3_service, s3_prefix)
    folder = actor.removeprefix(s3_prefix + "/")
    assert {f"{folder}/model.safetensors", f"{folder}/bai_train.json", f"{folder}/_bai_complete.json"} <= keys
    run_folder = folder.rsplit('/', 1)[0]
    assert f"{run_folder}/metrics.jsonl" in keys
    # the checkpoint holds both machines' RNG states, machine 1's handed over through S3
    assert {f"{run_folder}/checkpoint/rng_state_0.pth", f"{run_folder}/checkpoint/rng_state_1.pth"} <= keys
    assert json.loads(ArtifactStore(s3_prefix).get_text(f"{run_folder}/machines.json"))["state"] == "finished"


def test_cancelling_a_deployment_run_stops_it_cleanly(deployed, prefect_api, tmp_path):
    """Cancel from the UI (the API call the UI makes) while the worker trains the demo family."""
    store, cache = tmp_path / "store", Path(deployed["BAI_CACHE_DIR"])
    config = {"name": "cancelled", "storage": {"uri": str(store)},  # seed 1: shipped by no size, so built here
              "models": {role: f"demo://test/{role}@1" for role in ("pretrained", "instruct", "reasoning")}}
    flow_run_id = trigger("bai-pipeline/demo", {"config": config}, deployed)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = api(prefect_api, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}},
                                                      "task_runs": {"name": {"any_": ["demo-family-test"]}}})
        # a task run the API has just created can have no state yet
        if runs and (runs[0]["state"] or {}).get("type") == "RUNNING":
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the family build never started")
    time.sleep(3)  # into the build
    cancelled_at = time.monotonic()
    api(prefect_api, f"/flow_runs/{flow_run_id}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    run = wait_final(prefect_api, flow_run_id, timeout=120)
    elapsed = time.monotonic() - cancelled_at
    assert run["state"]["type"] == "CANCELLED", run["state"]
    assert elapsed < 15, f"{elapsed:.1f} s from cancel to Cancelled"  # 10 s, plus the worker's 1 s polling
    logs = api(prefect_api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}})
    stopped = [entry["message"] for entry in logs if entry["message"].startswith("stopped during")]
    assert stopped and stopped[0].startswith("stopped during demo-family-test"), [e["message"] for e in logs]
    assert not list(store.rglob("_bai_complete.json"))  # nothing half-published
    assert [p for root in (store, cache) if root.exists() for p in root.rglob("*") if ".bai-tmp-" in p.name] == []
