"""The cached pipeline: reruns reuse merges whose inputs did not change, and nothing stale is ever trusted."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.storage import MARKER
from tests.services import api
from tests.test_bad_input import rewrite

# Only the tests that run a flow wait for the session's Prefect server; config-only cases do not.
needs_prefect = pytest.mark.usefixtures("prefect_api")


def make_config(family: dict, store: str, name: str = "t", **merge) -> PipelineConfig:
    return PipelineConfig(name=name, models={role: str(path) for role, path in family.items()},
                          merge=merge, storage={"uri": store})


def run(config: PipelineConfig) -> dict:
    from bai.flows.pipeline import bai_pipeline

    return bai_pipeline(config)


def states(summary: dict) -> dict[str, str]:
    return {row["stage"]: row["state"] for row in summary["stages"]}


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def weights_mtimes(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.safetensors")}


@needs_prefect
def test_rerun_hits_the_cache_and_parameter_changes_rerun_only_what_depends_on_them(editable_family, tmp_path):
    config = make_config(editable_family, str(tmp_path / "store"))
    first = run(config)
    assert states(first) == {"fetch-pretrained": "Completed", "fetch-instruct": "Completed",
                             "fetch-reasoning": "Completed", "prepare-train": "Skipped", "prepare-evaluate": "Skipped",
                             "merge-stage1": "Completed", "merge-stage2": "Completed", "train": "Skipped",
                             "evaluate": "Skipped"}
    sft, bai = local(first["outputs"]["sft"]), local(first["outputs"]["bai"])
    before = weights_mtimes(sft) | weights_mtimes(bai)

    again = run(config)
    assert states(again)["merge-stage1"] == states(again)["merge-stage2"] == "Cached"
    assert again["outputs"] == first["outputs"]
    assert weights_mtimes(sft) | weights_mtimes(bai) == before  # no merge work: nothing was rewritten

    new_alpha = run(make_config(editable_family, str(tmp_path / "store"), alpha=0.2))
    assert states(new_alpha)["merge-stage1"] == "Cached"
    assert states(new_alpha)["merge-stage2"] == "Completed"
    assert new_alpha["outputs"]["bai"] != first["outputs"]["bai"]

    rewrite(editable_family["reasoning"], lambda t: t["model.norm.weight"].mul_(2))
    new_input = run(config)
    assert states(new_input)["merge-stage1"] == states(new_input)["merge-stage2"] == "Completed"
    assert new_input["outputs"]["sft"] != first["outputs"]["sft"]


@needs_prefect
def test_deleted_or_altered_artifacts_are_recomputed_not_trusted(family, tmp_path):
    config = make_config(family, str(tmp_path / "store"))
    first = run(config)
    sft, bai = local(first["outputs"]["sft"]), local(first["outputs"]["bai"])
    good_bytes = (sft / "model.safetensors").read_bytes()

    shutil.rmtree(bai)
    rerun = run(config)
    assert states(rerun)["merge-stage1"] == "Cached" and states(rerun)["merge-stage2"] == "Completed"
    assert (bai / MARKER).is_file()

    altered = bytearray(good_bytes)
    altered[-2] ^= 0xFF
    (sft / "model.safetensors").write_bytes(altered)
    rerun = run(config)
    assert states(rerun)["merge-stage1"] == "Rebuilt"  # published under this key, then damaged: said so
    assert (sft / "model.safetensors").read_bytes() == good_bytes
    # The recomputed M_sft is bit-identical, so M_bai's key is unchanged and it stays cached.
    assert states(rerun)["merge-stage2"] == "Cached"


@needs_prefect
def test_artifacts_in_s3_and_a_cache_shared_across_machines(family, s3_prefix, s3_service, tmp_path, monkeypatch):
    config = make_config(family, s3_prefix)
    first = run(config)
    assert first["outputs"]["bai"].startswith(s3_prefix)
    client = s3_service.client()
    bucket, prefix = s3_prefix.removeprefix("s3://").split("/", 1)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    bai_key = first["outputs"]["bai"].removeprefix(f"s3://{bucket}/")
    assert {f"{bai_key}/model.safetensors", f"{bai_key}/config.json", f"{bai_key}/{MARKER}"} <= keys
    # The artifacts' markers are the cache records: Prefect keeps no second record that could disagree with them.
    assert not any("_prefect-results" in k for k in keys)
    assert any(k.startswith(f"{prefix}/runs/t/") for k in keys)

    # Another machine: no local working copies at all. The markers and artifacts in S3 are enough.
    monkeypatch.setenv("BAI_CACHE_DIR", str(tmp_path / "other-machine-cache"))
    again = run(config)
    assert states(again)["merge-stage1"] == states(again)["merge-stage2"] == "Cached"

    # Altering the S3 object is detected from the listing (its ETag changes), and the merge is redone: to the same
    # bytes as the first run's, under a marker recording the same fingerprint.
    def s3_bytes(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    original, first_marker = s3_bytes(f"{bai_key}/model.safetensors"), json.loads(s3_bytes(f"{bai_key}/{MARKER}"))
    client.put_object(Bucket=bucket, Key=f"{bai_key}/model.safetensors", Body=b"tampered")
    rerun = run(config)
    assert states(rerun)["merge-stage2"] == "Rebuilt"
    assert s3_bytes(f"{bai_key}/model.safetensors") == original
    marker = json.loads(s3_bytes(f"{bai_key}/{MARKER}"))
    assert marker["fingerprint"] == first_marker["fingerprint"] and marker["cache_key"] == first_marker["cache_key"]


def test_s3_source_is_downloaded_once(family, s3_prefix, s3_service, tmp_path):
    from bai_core.sources import fetch

    client = s3_service.client()
    bucket, prefix = s3_prefix.removeprefix("s3://").split("/", 1)
    for path in family["instruct"].iterdir():
        client.upload_file(str(path), bucket, f"{prefix}/instruct/{path.name}")
    first = fetch(f"{s3_prefix}/instruct")
    assert first.fingerprint == fetch(str(family["instruct"])).fingerprint  # same bytes, same fingerprint
    inode = first.path.stat().st_ino
    second = fetch(f"{s3_prefix}/instruct")
    assert second.path == first.path and second.path.stat().st_ino == inode  # nothing was downloaded again


@needs_prefect
def test_pipeline_stops_at_a_wrong_architecture_with_a_clear_error(family_factory, tmp_path):
    from bai.flows.pipeline import PipelineFailed

    other = family_factory(dtype="bfloat16", tied=True, seed=0)
    wrong = tmp_path / "wrong"
    shutil.copytree(other["reasoning"], wrong)
    config_path = wrong / "config.json"
    config = json.loads(config_path.read_text())
    config["num_hidden_layers"] = 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(PipelineFailed) as failure:
        run(make_config({**other, "reasoning": wrong}, str(tmp_path / "store")))
    assert "architecture mismatch: num_hidden_layers" in str(failure.value)
    states = {r["stage"]: r["state"] for r in failure.value.rows}
    assert (states["merge-stage1"], states["merge-stage2"]) == ("Failed", "Not run")


@pytest.mark.parametrize("problem", ["unreachable", "missing bucket", "bad credentials"])
def test_s3_problems_are_reported_in_one_line(family, s3_service, monkeypatch, problem):
    from bai_core.storage import ArtifactStore

    uri = "s3://bai-tests/x"
    if problem == "unreachable":
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        expected = "unreachable after 3 attempts"
    elif problem == "missing bucket":
        uri, expected = "s3://no-such-bucket/x", "bucket 'no-such-bucket' does not exist"
    else:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        expected = "refused access"
    with pytest.raises(BaiError) as failure:
        ArtifactStore(uri).check()
    assert expected in str(failure.value) and "\n" not in str(failure.value)
    assert "wrong-secret" not in str(failure.value)


def test_hub_ids_without_network_say_what_to_do():
    from bai_core.sources import fetch

    with pytest.raises(BaiError) as failure:
        fetch("Qwen/Qwen2.5-Math-1.5B@main")
    message = str(failure.value)
    assert message.startswith("Qwen/Qwen2.5-Math-1.5B@main: cannot reach the Hugging Face hub")
    assert "local folder" in message and "HF_HUB_OFFLINE" in message


def test_unknown_config_keys_are_named(tmp_path):
    from bai_core.config import load_pipeline_config

    path = tmp_path / "c.yaml"
    path.write_text("models: {pretrained: a, instuct: b, reasoning: c}\n")
    with pytest.raises(BaiError, match=r"^invalid models\.instuct: unknown key \(did you mean 'instruct'\?\)$"):
        load_pipeline_config(path)
    path.write_text("models: {pretrained: a, instruct: b, reasoning: c}\nmerge: {alpah: 0.3}\n")
    with pytest.raises(BaiError, match=r"invalid merge\.alpah: unknown key \(did you mean 'alpha'\?\)"):
        load_pipeline_config(path)
    with pytest.raises(BaiError, match=r"invalid merge\.alpha: Input should be less than or equal to 1"):
        load_pipeline_config(path.with_name("c.yaml"), ["merge={alpha: 3}"])
    assert load_pipeline_config(path, ["merge.alpah=null", "merge={alpha: 0.25}"]).merge.alpha == 0.25


def test_a_relative_path_that_does_not_exist_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    from bai_core.sources import fetch

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mymodels").mkdir()
    with pytest.raises(BaiError) as failure:
        fetch("mymodels/pretrained")
    assert str(failure.value) == (f"mymodels/pretrained: no such local folder ({tmp_path}/mymodels/pretrained); "
                                  "mymodels/ exists here, so this is not taken for a hub id")
    with pytest.raises(BaiError) as failure:  # no such folder either: it may be a hub id, or a path typo
        fetch("othermodels/pretrained")
    assert "cannot reach the Hugging Face hub" in str(failure.value)
    assert f"if you meant a local folder: there is none at {tmp_path}/othermodels/pretrained" in str(failure.value)


def test_hub_ids_resolve_to_a_commit_from_the_local_hub_cache(family):
    """The real snapshot_download code path, offline: a hub cache laid out as huggingface_hub writes it."""
    from huggingface_hub import constants

    from bai_core.sources import fetch

    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--tiny-org--tiny-pretrained"  # the session's own HF_HOME
    shutil.copytree(family["pretrained"], repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)

    fetched = fetch("tiny-org/tiny-pretrained")
    assert fetched.revision == sha and fetched.path.name == sha
    assert fetched.fingerprint == fetch(str(family["pretrained"])).fingerprint
    assert fetch(f"hf://tiny-org/tiny-pretrained@{sha}").path == fetched.path


def test_pipeline_on_the_trained_demo_family(own_demo_store, prefect_api):
    store = own_demo_store.local_root  # this test's own copy of the store: the states below are exact
    config = PipelineConfig(name="demo-test", storage={"uri": str(store)},
                            models={role: f"demo://test/{role}" for role in ("pretrained", "instruct", "reasoning")})
    summary = run(config)
    assert states(summary)["demo-family-test"] == "Cached"  # found published in the store, not trained again
    assert states(summary)["merge-stage2"] == "Completed"
    rerun = run(config)
    assert [states(rerun)[s] for s in ("demo-family-test", "merge-stage1", "merge-stage2")] == ["Cached"] * 3
    fingerprints = {ref["role"]: ref["fingerprint"] for ref in summary["inputs"].values()}
    [manifest] = (store / "families").glob("test-seed0-*/family.json")
    family = json.loads(manifest.read_text())
    assert fingerprints == {m: family["models"][m]["fingerprint"] for m in fingerprints}
    [artifact] = api(prefect_api, "/artifacts/filter",
                     {"artifacts": {"key": {"any_": ["demo-family-test-seed0"]}}, "limit": 1})
    assert [row["model"] for row in json.loads(artifact["data"])] == [
        "pretrained", "instruct", "reasoning", "M_sft (w 0.5)", "M_bai (alpha 0.1)", "M_bai (alpha 0.2)",
        "M_bai (alpha 0.5)", "M_bai (alpha 0.7)", "M_bai (alpha 0.9)", "reward"]

    # What the UI shows for this run: a name that tells it apart, a readable stage table, no stray training bar.
    flow_run = api(prefect_api, f"/flow_runs/{summary['flow_run_id']}")
    assert re.fullmatch(rf"demo-test: w=0\.5 alpha=0\.5 -> {re.escape(str(store))} \[[0-9a-f]{{6}}\]", flow_run["name"])
    artifacts = api(prefect_api, "/artifacts/filter",
                    {"artifacts": {"flow_run_id": {"any_": [summary["flow_run_id"]]}}})
    bars = [a["description"] for a in artifacts if a["type"] == "progress"]
    assert not [d for d in bars if "demo family" in d]  # found in the store: no training bar, not even at 0%
    assert all("*" not in d for d in bars)  # Markdown would turn 0.5*pretrained + 0.5*sft into italics
    [table] = [a for a in artifacts if a["key"] == "demo-test-stages"]
    rows = {row["stage"]: row for row in json.loads(table["data"])}
    assert rows["train"] == {"stage": "train", "state": "Skipped", "time": "0.0 s",
                             "output or note": "not configured (config.train)"}
    assert all(re.fullmatch(r"\d+\.\d s", row["time"]) for row in rows.values())


def test_the_evaluate_stage_scores_members_and_merges_and_a_rerun_is_cached(own_demo_store, demo_family,
                                                                            prefect_api):
    """evaluate: the models named are scored by lm-eval after the merges, with a scores table in the UI; the
    demo split comes from the demo:// sources; a rerun reads every score from the cache."""
    config = PipelineConfig(name="eval-test", storage={"uri": str(own_demo_store.local_root)},
                            models={role: f"demo://test/{role}" for role in ("pretrained", "instruct", "reasoning")},
                            evaluate={"models": ["instruct", "bai"]})
    first = run(config)
    rows = {row["stage"]: row for row in first["stages"]}
    assert list(rows)[-2:] == ["evaluate-instruct", "evaluate-bai"]
    assert rows["prepare-evaluate"]["output"] == "suite demo (demo family test@0)"
    assert rows["evaluate-instruct"]["state"] == rows["evaluate-bai"]["state"] == "Completed"
    scores = first["outputs"]["scores"]
    instruct = demo_family.report.models["instruct"]
    assert scores["instruct"]["overall"] == pytest.approx(instruct["accuracy"], abs=1.5 / 64)
    assert scores["instruct"]["mean_answer_tokens"] == pytest.approx(instruct["mean_answer_tokens"], abs=0.2)
    assert 0 <= scores["bai"]["overall"] <= 1 and scores["bai"]["rows"][0]["finished_share"] is not None
    [table] = api(prefect_api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["eval-test-scores"]},
                                                                   "flow_run_id": {"any_": [first["flow_run_id"]]}}})
    assert [(row["model"], row["task"]) for row in json.loads(table["data"])] == [("instruct", "bai_demo"),
                                                                                 ("bai", "bai_demo")]
    again = run(config)
    assert states(again)["evaluate-instruct"] == states(again)["evaluate-bai"] == "Cached"
    assert again["outputs"]["scores"] == scores

    # Any file of a published score deleted or cut short: that stage scores again and says why, never Cached.
    instruct_folder, bai_folder = local(scores["instruct"]["uri"]), local(scores["bai"]["uri"])
    (bai_folder / "scores.json").unlink()
    results = (instruct_folder / "results.json").read_bytes()
    (instruct_folder / "results.json").write_bytes(results[: len(results) // 2])
    repaired = run(config)
    assert states(repaired)["evaluate-instruct"] == states(repaired)["evaluate-bai"] == "Rebuilt"
    assert (bai_folder / "scores.json").is_file() and len((instruct_folder / "results.json").read_bytes()) > len(
        results) // 2
    assert repaired["outputs"]["scores"]["bai"]["overall"] == scores["bai"]["overall"]
    said, deadline = [], time.monotonic() + 30
    while len(said) < 2 and time.monotonic() < deadline:  # the run's last log lines reach the server shortly after
        logs = api(prefect_api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [repaired["flow_run_id"]]}}})
        said = [entry["message"] for entry in logs if "building it again" in entry["message"]]
        time.sleep(0.5)
    assert any(f"{scores['bai']['uri']}: scores.json missing" in line for line in said), said
    assert any(f"results.json is {len(results) // 2} bytes, published as {len(results)}" in line for line in said)
    task_runs = api(prefect_api, "/task_runs/filter", {"flow_runs": {"id": {"any_": [repaired["flow_run_id"]]}}})
    assert sorted((run["state"]["name"], run["state"]["message"]) for run in task_runs
                  if run["state"]["name"] == "Rebuilt") == [  # what the UI shows beside each state
        ("Rebuilt", f"rebuilt: results.json is {len(results) // 2} bytes, published as {len(results)}"),
        ("Rebuilt", "rebuilt: scores.json missing")], [(r["name"], r["state"]["name"]) for r in task_runs]


def test_a_failed_stage_logs_its_one_line_error_without_a_traceback(family, tmp_path, prefect_api):
    from bai.flows.pipeline import PipelineFailed

    config = make_config({**family, "instruct": tmp_path / "missing"}, str(tmp_path / "store"), name="fails")
    from prefect.logging.handlers import APILogWorker

    with pytest.raises(PipelineFailed):
        run(config)
    APILogWorker.drain_all(timeout=10)  # the run's log lines reach the server in the background
    from bai.flows.pipeline import describe_run

    [flow_run] = api(prefect_api, "/flow_runs/filter", {"flow_runs": {"name": {"any_": [describe_run(config)]}}})
    logs = [entry["message"] for entry in api(prefect_api, "/logs/filter",
                                              {"logs": {"flow_run_id": {"any_": [flow_run["id"]]}}})]
    assert any(f"{tmp_path / 'missing'}: checkpoint folder not found" in message for message in logs), logs
    assert not [message for message in logs if "Traceback" in message]


@needs_prefect
def test_a_demo_family_this_machine_has_is_uploaded_not_retrained(demo_family, s3_prefix):
    """The test family, shipped with bai (so found on every machine), goes to an S3 store as it is: no training."""
    from bai_core.demo.family import MEMBERS
    from bai_core.demo.publish import ensure_demo_family, member_key
    from bai_core.storage import ArtifactStore

    store = ArtifactStore(s3_prefix)
    reports = []
    uploaded = ensure_demo_family("test", 0, store, progress=lambda *report: reports.append(report))
    assert reports == []  # no training step
    for member in MEMBERS:
        marker = store.find(member_key("test", 0, member))
        assert marker["fingerprint"] == demo_family.report.models[member]["fingerprint"]
    assert uploaded.report.models == demo_family.report.models


def test_a_checkpoint_given_as_the_file_uri_bai_prints_is_the_local_folder(family, tmp_path):
    """Outputs are printed as file:// URIs; a model source pasted back that way (spaces quoted) is that folder."""
    from bai_core.sources import fetch

    spaced = tmp_path / "my models" / "pretrained"
    shutil.copytree(family["pretrained"], spaced)
    by_path, by_uri = fetch(str(spaced)), fetch(spaced.as_uri())
    assert "%20" in spaced.as_uri() and by_uri.path == by_path.path == spaced.resolve()
    assert by_uri.fingerprint == by_path.fingerprint
