"""Prefect-side storage set-up: S3 credentials from a Prefect Secret block."""

from __future__ import annotations

import os

from bai_core.errors import BaiError
from bai_core.storage import StorageConfig


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
