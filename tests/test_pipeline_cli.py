"""`bai run` as users run it: JSON output, clean errors, a killed run that resumes, and secrets that never leak."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

# Only the tests that run a flow wait for the session's Prefect server; config-only cases do not.
needs_prefect = pytest.mark.usefixtures("prefect_api")


def write_config(path: Path, family: dict, store: str, name: str = "cli") -> Path:
    path.write_text(yaml.safe_dump({"name": name, "models": {r: str(p) for r, p in family.items()},
                                    "storage": {"uri": store}}))
    return path


def bai_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bai.cli", "run", *args], capture_output=True, text=True,
                          timeout=timeout)


@needs_prefect
def test_json_output_and_overrides(family, tmp_path):
    config = write_config(tmp_path / "c.yaml", family, str(tmp_path / "store"))
    proc = bai_run(str(config), "--json", "--set", "merge.alpha=0.25")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["merge"]["alpha"] == 0.25
    assert [row["stage"] for row in summary["stages"]] == [
        "fetch-pretrained", "fetch-instruct", "fetch-reasoning", "prepare-train", "prepare-evaluate", "merge-stage1",
        "merge-stage2", "train", "evaluate"]
    assert Path(summary["outputs"]["bai"].removeprefix("file://"), "model.safetensors").is_file()


@pytest.mark.parametrize("content,error", [
    ("models: {pretrained: a, instruct: b, reasoning: c}\nstorage: {url: x}\n",
     "invalid storage.url: unknown key (did you mean 'uri'?)"),
    ("models: {pretrained: /nope, instruct: b, reasoning: c}\n", "/nope: checkpoint folder not found"),
])
def test_errors_are_one_line_without_traceback(tmp_path, content, error):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    proc = bai_run(str(config))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    # Not a terminal: the stages show as timestamped progress lines; the error is one line, the last.
    *progress_lines, last = proc.stderr.strip().splitlines()
    assert last == f"bai: error: {error}"
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in progress_lines), progress_lines


@needs_prefect
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_run_stopped_mid_merge_resumes_from_the_cached_stage(medium_family, tmp_path, sig):
    store = tmp_path / "store"
    config = write_config(tmp_path / "c.yaml", medium_family, str(store), name="killed")
    proc = subprocess.Popen([sys.executable, "-m", "bai.cli", "run", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    sent = None
    while time.monotonic() < deadline and proc.poll() is None:
        if list((store / "merges").glob(".bai-*.bai-tmp-*/*.safetensors")):  # stage 2 is writing
            proc.send_signal(sig)
            sent = time.monotonic()
            break
        time.sleep(0.002)
    stderr = proc.communicate(timeout=60)[1]
    assert sent is not None, "the run finished before stage 2 could be interrupted"
    assert not [p for p in (store / "merges").glob("bai-*") if (p / "_bai_complete.json").exists()]
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and time.monotonic() - sent < 10
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("bai: stopped by SIGTERM during merge-stage2"), stderr
        assert not list((store / "merges").glob(".*"))  # its temporary folder is gone already

    rerun = bai_run(str(config), "--json")
    assert rerun.returncode == 0, rerun.stderr
    states = {row["stage"]: row["state"] for row in json.loads(rerun.stdout)["stages"]}
    assert states["merge-stage1"] == "Cached" and states["merge-stage2"] == "Completed"
    assert not list((store / "merges").glob(".*"))  # a killed run's temporary folder was cleaned up


def test_secrets_never_reach_logs_artifacts_manifests_or_storage(family, s3_prefix, s3_service, prefect_api,
                                                                  tmp_path):
    from prefect.logging.handlers import APILogWorker

    from bai.flows.pipeline import bai_pipeline
    from tests.test_pipeline import make_config

    secret = s3_service.secret_key
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == secret
    summary = bai_pipeline(make_config(family, s3_prefix, name="secrets"))
    APILogWorker.drain_all(timeout=10)  # the run's log lines reach the server in the background

    def post(path: str, body: dict) -> str:
        request = urllib.request.Request(f"{prefect_api}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    run_filter = {"flow_run_id": {"any_": [summary["flow_run_id"]]}}
    seen = {
        "logs": post("/logs/filter", {"logs": run_filter}),
        "artifacts": post("/artifacts/filter", {"artifacts": run_filter}),
        "blocks": post("/block_documents/filter", {"include_secrets": True}),
        "summary": json.dumps(summary),
    }
    client = s3_service.client()
    bucket, prefix = s3_prefix.removeprefix("s3://").split("/", 1)
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        seen[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("latin-1")
    cache = Path(os.environ["BAI_CACHE_DIR"])
    for path in cache.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".sqlite"}:
            seen[str(path)] = path.read_bytes().decode("latin-1")
    assert len(seen["logs"]) > 2 and "model.safetensors" in " ".join(seen)
    leaks = [where for where, text in seen.items() if secret in text]
    assert leaks == []


def test_an_unreachable_prefect_api_is_one_line(family, tmp_path):
    config = write_config(tmp_path / "c.yaml", family, str(tmp_path / "store"))
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    proc = subprocess.run([sys.executable, "-m", "bai.cli", "run", str(config)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("bai: error: the Prefect API at http://127.0.0.1:9/api does not answer")
