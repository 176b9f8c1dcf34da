"""Prefect-side storage set-up: where task results (the cache records) live, and S3 credentials from a block."""

from __future__ import annotations

import hashlib
import os

from bai_core.config import StorageConfig
from bai_core.errors import BaiError
from bai_core.pipeline import open_store
from bai_core.storage import s3_config

RESULTS_FOLDER = "_prefect-results"


def apply_credentials(storage: StorageConfig) -> None:
    """Load S3 keys from a Prefect Secret block into this process's environment, where s3fs and Prefect's own
    result storage both find them. The values are never logged, stored in a manifest or put in a block's settings."""
    if storage.credentials_block is None:
        return
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(storage.credentials_block).get()
    except ValueError:
        raise BaiError(f"storage.credentials_block: no Secret block named {storage.credentials_block!r}") from None
    if not isinstance(value, dict) or not {"aws_access_key_id", "aws_secret_access_key"} <= set(value):
        raise BaiError(
            f"storage.credentials_block: Secret {storage.credentials_block!r} must hold a JSON object with "
            "aws_access_key_id and aws_secret_access_key"
        )
    os.environ["AWS_ACCESS_KEY_ID"] = value["aws_access_key_id"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = value["aws_secret_access_key"]


def result_storage(storage: StorageConfig) -> str:
    """A saved Prefect storage block beside the artifacts; returns its 'type/name' reference for tasks."""
    from prefect.filesystems import LocalFileSystem, RemoteFileSystem

    store = open_store(storage)
    store.check()
    name = "bai-results-" + hashlib.sha256(store.url.encode()).hexdigest()[:12]
    if store.is_local:
        LocalFileSystem(basepath=str(store.local_root / RESULTS_FOLDER)).save(name, overwrite=True)
        return f"local-file-system/{name}"
    # Only the endpoint goes into the block (block settings are stored in plain text); keys come from the env.
    settings = {"config_kwargs": s3_config(), "skip_instance_cache": True, "use_listings_cache": False}
    endpoint = storage.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        settings["client_kwargs"] = {"endpoint_url": endpoint}
    RemoteFileSystem(basepath=f"{store.url}/{RESULTS_FOLDER}", settings=settings).save(name, overwrite=True)
    return f"remote-file-system/{name}"
