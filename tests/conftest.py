"""Shared fixtures: tiny synthetic checkpoint families (a few hundred KB each), built once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tests.services import child_pids, free_port, kill_children_except, start_moto, start_prefect_server, stop

# Offline and quiet, before anything imports huggingface_hub, transformers or prefect. The Prefect API is a real
# server for the whole session (started on first use by the `prefect_api` fixture), never ~/.prefect.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="bai-tests-"))
_PREFECT_PORT = free_port()
os.environ.update(
    PREFECT_HOME=str(_SESSION_TMP / "prefect-home"),
    PREFECT_API_URL=f"http://127.0.0.1:{_PREFECT_PORT}/api",
    PREFECT_SERVER_UI_ENABLED="false",
    PREFECT_WORKER_QUERY_SECONDS="1",
    PREFECT_WORKER_PREFETCH_SECONDS="5",
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    DO_NOT_TRACK="1",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    HF_HOME=str(_SESSION_TMP / "hf-home"),
    BAI_CACHE_DIR=str(_SESSION_TMP / "bai-cache"),
    TOKENIZERS_PARALLELISM="false",
)

import pytest  # noqa: E402

from bai_core.demo.synthetic import SyntheticSpec, write_synthetic_family  # noqa: E402

TINY = SyntheticSpec(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64, vocab_size=112)
# ~136 MB per checkpoint in float32: big enough that a single-worker merge takes a good fraction of a second, so a
# signal can land mid-merge.
MEDIUM = SyntheticSpec(hidden_size=1024, num_layers=2, num_heads=8, num_kv_heads=8, intermediate_size=2816,
                       vocab_size=8192, dtype="float32")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_test():
    """What one test starts or changes ends with it: its environment changes are undone, and every process it left
    running (a child whose test failed before stopping it, and that child's own children) is killed, process group
    and all. The session's services, started before the test, are left alone."""
    before = child_pids()
    environment = dict(os.environ)
    yield
    if os.environ != environment:
        os.environ.clear()
        os.environ.update(environment)
    kill_children_except(before)


@pytest.fixture(scope="session")
def prefect_api():
    """A real `prefect server` on 127.0.0.1 for the session; flows in this process and workers both use it."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    home = Path(os.environ["PREFECT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    proc = start_prefect_server(home, _PREFECT_PORT)
    try:
        # Each flow run otherwise waits ~1 s for its heartbeat thread; nothing here needs heartbeats.
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield os.environ["PREFECT_API_URL"]
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)  # send the last log lines while the server still listens
        stop(proc)


@pytest.fixture(scope="session")
def s3_service():
    """moto_server on 127.0.0.1 with authentication on; its keys go into this process's environment."""
    service = start_moto()
    keys = dict(AWS_ACCESS_KEY_ID=service.access_key, AWS_SECRET_ACCESS_KEY=service.secret_key,
                AWS_ENDPOINT_URL=service.endpoint, AWS_DEFAULT_REGION="us-east-1")
    previous = {name: os.environ.get(name) for name in keys}
    os.environ.update(keys)
    service.client().create_bucket(Bucket="bai-tests")
    try:
        yield service
    finally:
        stop(service.proc)
        for name, value in previous.items():  # the keys end with the service
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_prefix(s3_service, request):
    """A fresh s3://bai-tests/<test>/ prefix."""
    import uuid

    return f"s3://bai-tests/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def family_factory(tmp_path_factory):
    """family_factory(dtype=..., tied=..., shard_bytes=...) -> {role: folder}; built once per distinct argument set."""
    built: dict[tuple, dict[str, Path]] = {}

    def make(dtype: str = "bfloat16", tied: bool = True, shard_bytes: int | None = None, seed: int = 0):
        key = (dtype, tied, shard_bytes, seed)
        if key not in built:
            spec = SyntheticSpec(**{**TINY.__dict__, "dtype": dtype, "tie_word_embeddings": tied})
            root = tmp_path_factory.mktemp(f"family-{dtype}-{'tied' if tied else 'untied'}-{shard_bytes}-{seed}")
            built[key] = write_synthetic_family(root, spec, seed=seed, max_shard_bytes=shard_bytes)
        return built[key]

    return make


@pytest.fixture(scope="session")
def family(family_factory):
    """The default family: bfloat16, tied embeddings, single-file weights."""
    return family_factory()


@pytest.fixture(scope="session")
def medium_family(tmp_path_factory):
    """A family of ~136 MB checkpoints, for tests that interrupt a merge; built once per session, read only."""
    return write_synthetic_family(tmp_path_factory.mktemp("medium"), MEDIUM)


@pytest.fixture
def editable_family(family, tmp_path):
    """A private copy of the default family, for tests that damage or change an input."""
    copies = {}
    for role, folder in family.items():
        copies[role] = tmp_path / "inputs" / role
        shutil.copytree(folder, copies[role])
    return copies


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """A local artifact store holding the trained `test`-size demo family (trained once per session, ~30 s). Read
    only: a test that writes to a store takes `own_demo_store`."""
    from bai_core.demo.publish import ensure_demo_family
    from bai_core.storage import ArtifactStore

    store = ArtifactStore(str(tmp_path_factory.mktemp("demo-store")))
    ensure_demo_family("test", 0, store)
    return store


@pytest.fixture
def own_demo_store(demo_store, tmp_path):
    """A store of this test's own, holding a copy of the session's trained family and nothing else: what the test
    writes no other test sees, so its states can be exact whatever ran before."""
    from bai_core.storage import ArtifactStore

    root = tmp_path / "own-store"
    shutil.copytree(demo_store.local_root / "families", root / "families")
    return ArtifactStore(str(root))


@pytest.fixture(scope="session")
def demo_family(demo_store):
    from bai_core.demo.publish import ensure_demo_family

    return ensure_demo_family("test", 0, demo_store)  # found in the store: no training
