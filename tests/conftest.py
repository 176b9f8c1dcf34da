"""Shared fixtures: tiny synthetic checkpoint families (a few hundred KB each), built once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Offline and quiet, before anything imports huggingface_hub, transformers or prefect.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="bai-tests-"))
os.environ.update(
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

from bai_core.synthetic import SyntheticSpec, write_synthetic_family  # noqa: E402

TINY = SyntheticSpec(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64, vocab_size=112)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)


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


@pytest.fixture
def editable_family(family, tmp_path):
    """A private copy of the default family, for tests that damage or change an input."""
    copies = {}
    for role, folder in family.items():
        copies[role] = tmp_path / "inputs" / role
        shutil.copytree(folder, copies[role])
    return copies
