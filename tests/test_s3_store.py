"""The artifact store on a real S3 endpoint (moto_server with IAM on): checkpoint-sized multipart uploads, an upload
killed midway, and keys that come from a Prefect Secret block (`storage.credentials_block`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from bai_core.fingerprint import fingerprint_folder
from bai_core.storage import MARKER, ArtifactStore

# s3fs uploads a file in parts from 2 x 50 MiB up; real checkpoint shards (GBs) always take that path.
MULTIPART_BYTES = 110 * 2**20

PUBLISH = """
import sys
from bai_core.storage import ArtifactStore
ArtifactStore(sys.argv[1]).publish(sys.argv[2], {"fingerprint": "f"})
"""


def artifact(store: ArtifactStore, key: str, weights: bytes) -> None:
    folder = store.local_path(key)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)


def pending_uploads(service, uri: str) -> list[str]:
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    listing = service.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in listing.get("Uploads", [])]


def object_names(service, uri: str) -> list[str]:
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    listing = service.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", []))


def test_a_multipart_artifact_round_trips_and_is_verified_by_its_parts_etag(s3_service, s3_prefix, tmp_path,
                                                                            monkeypatch):
    weights = os.urandom(MULTIPART_BYTES)
    store = ArtifactStore(s3_prefix)
    artifact(store, "merges/big", weights)
    marker = store.publish("merges/big", {"fingerprint": fingerprint_folder(store.local_path("merges/big"))})
    assert marker["files"]["model.safetensors"]["etag"].endswith('-3"')  # three 50 MiB parts: multipart
    assert store.find("merges/big") == marker

    monkeypatch.setenv("BAI_CACHE_DIR", str(tmp_path / "other-machine"))  # another machine: an empty local cache
    elsewhere = ArtifactStore(s3_prefix)
    assert elsewhere.local_root != store.local_root
    folder = elsewhere.materialize("merges/big", elsewhere.find("merges/big"))
    assert folder.is_relative_to(tmp_path) and (folder / "model.safetensors").read_bytes() == weights


def test_an_upload_killed_midway_leaves_nothing_that_looks_complete_and_the_retry_cleans_up(s3_service, s3_prefix):
    store = ArtifactStore(s3_prefix)
    artifact(store, "merges/killed", os.urandom(2 * MULTIPART_BYTES))
    uri = store.uri("merges/killed")
    child = subprocess.Popen([sys.executable, "-c", PUBLISH, s3_prefix, "merges/killed"], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not pending_uploads(s3_service, uri):
            assert child.poll() is None, f"the upload ended before it could be killed: {child.stderr.read()}"
            assert time.monotonic() < deadline, "no multipart upload started within 60 s"
            time.sleep(0.02)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)

    # What a reader sees: the small file that went first, no weights, no marker. Nothing counts as published.
    assert object_names(s3_service, uri) == ["config.json"]
    assert store.read_marker("merges/killed") is None and store.find("merges/killed") is None
    assert pending_uploads(s3_service, uri) == [f"{uri.split('/', 3)[3]}/model.safetensors"]

    marker = store.publish("merges/killed", {"fingerprint": "f"})  # the retry
    assert store.find("merges/killed") == marker
    assert object_names(s3_service, uri) == sorted(["config.json", "model.safetensors", MARKER])
    assert pending_uploads(s3_service, uri) == []  # the dead upload's parts were aborted, not left to be billed


@pytest.mark.usefixtures("prefect_api")
def test_credentials_from_a_secret_block_reach_s3_and_nothing_else_holds_them(family, s3_service, s3_prefix,
                                                                              tmp_path):
    """`bai run` in a process with no AWS keys in its environment: the keys of another IAM user, held in a Prefect
    Secret block, are what publishes. Deleting that user's key makes the same run fail in one line."""
    import boto3
    from prefect.blocks.system import Secret

    iam = boto3.client("iam", endpoint_url=s3_service.endpoint, aws_access_key_id=s3_service.access_key,
                       aws_secret_access_key=s3_service.secret_key, region_name="us-east-1")
    user = f"block-user-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    block = f"s3-keys-{uuid.uuid4().hex[:6]}"
    Secret(value={"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}).save(block)

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "block", "models": {r: str(p) for r, p in family.items()},
                                      "storage": {"uri": s3_prefix, "credentials_block": block}}))
    env = {k: v for k, v in os.environ.items() if k not in {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}}

    def bai_run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bai.cli", "run", str(config), "--json", *extra], env=env,
                              capture_output=True, text=True, timeout=300)

    ran = bai_run()
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert {row["stage"]: row["state"] for row in summary["stages"]}["merge-stage2"] == "Completed"
    assert summary["outputs"]["bai"].startswith(s3_prefix)
    assert "model.safetensors" in object_names(s3_service, summary["outputs"]["bai"])
    assert key["SecretAccessKey"] not in ran.stdout + ran.stderr

    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    refused = bai_run("--set", "merge.alpha=0.25")
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert "refused access" in line and key["SecretAccessKey"] not in line


class Killed(BaseException):
    """What a SIGKILL at that moment would leave: the code after it never runs."""


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_run_killed_while_saving_a_checkpoint_still_has_one_to_resume_from(where, tmp_path, request, monkeypatch):
    """A new checkpoint is published whole beside the last and then put in its place; stopped between the two
    (the last one's files already gone), the run resumes from the new one, and the next save tidies up."""
    from bai_core.rl.run_store import find_checkpoint, publish_checkpoint

    store = ArtifactStore(str(tmp_path / "store") if where == "local" else request.getfixturevalue("s3_prefix"))
    store.check()

    def saved(step: int):
        trl = tmp_path / f"trl-{step}"
        trl.mkdir()
        (trl / "model.safetensors").write_bytes(os.urandom(1000))
        (trl / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        return trl

    publish_checkpoint(store, "train/k", "k", saved(3), 3)
    key, marker = find_checkpoint(store, "train/k")
    assert (key, marker["step"]) == ("train/k/checkpoint", 3)
    assert store.read_marker("train/k/checkpoint.next") is None
    assert not store.local_path("train/k/checkpoint.next").exists()

    if where == "local":  # the second rename (the new one into the last one's place) never happens
        rename = os.rename
        monkeypatch.setattr(os, "rename", lambda a, b: (_ for _ in ()).throw(Killed()) if str(a).endswith(".next")
                            else rename(a, b))
    else:  # the last one's marker and files are deleted, its copy of the new one never made
        monkeypatch.setattr(store.fs, "copy", lambda *args, **kwargs: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        publish_checkpoint(store, "train/k", "k", saved(6), 6)
    monkeypatch.undo()
    assert store.find("train/k/checkpoint") is None
    key, marker = find_checkpoint(store, "train/k")
    assert (key, marker["step"]) == ("train/k/checkpoint.next", 6)
    resumed = store.materialize(key, marker)
    assert (resumed / "model.safetensors").read_bytes() == (tmp_path / "trl-6" / "model.safetensors").read_bytes()

    publish_checkpoint(store, "train/k", "k", saved(9), 9)
    key, marker = find_checkpoint(store, "train/k")
    assert (key, marker["step"]) == ("train/k/checkpoint", 9)
    assert store.read_marker("train/k/checkpoint.next") is None
    # (the killed save's hidden temporary is removed by the next write once its process is gone; here it is not)
    assert sorted(p.name for p in store.local_path("train/k").iterdir() if not p.name.startswith(".")) == ["checkpoint"]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_any_file_of_an_artifact_deleted_or_cut_short_makes_it_count_as_damaged_and_says_which(where, tmp_path,
                                                                                               request):
    """Every file the marker lists, those published alongside the folder too (a train run's metrics beside its
    actor), is checked: gone or at another size, the artifact is not found, and `find_or_why` says which file."""
    store = ArtifactStore(str(tmp_path / "store") if where == "local" else request.getfixturevalue("s3_prefix"))
    store.check()
    artifact(store, "train/k/actor", os.urandom(1000))
    (store.local_path("train/k/actor") / "scores.json").write_text('{"overall": 0.5}')
    store.put_text("train/k/metrics.jsonl", '{"step": 1}\n')
    store.put_bytes("train/k/plots/length.png", b"png")
    marker = store.publish("train/k/actor", {"fingerprint": fingerprint_folder(store.local_path("train/k/actor"))},
                           alongside=("metrics.jsonl", "plots/length.png"))
    assert store.find_or_why("train/k/actor") == (marker, None)

    files = {"config.json": "train/k/actor/config.json", "model.safetensors": "train/k/actor/model.safetensors",
             "scores.json": "train/k/actor/scores.json", "metrics.jsonl": "train/k/metrics.jsonl",
             "plots/length.png": "train/k/plots/length.png"}
    for name, key in files.items():
        original = store.get_bytes(key)
        if where == "local":
            store.local_path(key).unlink()
        else:
            store.fs.rm_file(store.uri(key))
        assert store.find_or_why("train/k/actor") == (None, f"{name} missing"), name
        store.put_bytes(key, original[:-1])  # cut short by a byte
        assert store.find_or_why("train/k/actor") == (
            None, f"{name} is {len(original) - 1} bytes, published as {len(original)}"), name
        store.put_bytes(key, original)
        assert store.find("train/k/actor") == marker, name
    store.put_text("train/k/actor/notes.txt", "mine")
    assert store.find_or_why("train/k/actor") == (None, "notes.txt was added after it was published")
