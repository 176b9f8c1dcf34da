"""Where checkpoints come from: a local folder, `s3://bucket/prefix`, a Hugging Face hub id, or a plug-in's scheme.

Every source resolves to a local folder (the merge engine reads local files) plus a content fingerprint. Remote
downloads land in a local cache keyed by what the remote says the content is (S3 ETags and sizes; the hub's commit
sha), so fetching the same content again downloads nothing.

    /data/qwen-math, ./models/x, ~/ckpt        a local folder
    s3://bucket/prefix                         an S3 (or S3-compatible) prefix; endpoint/keys from the environment
    Qwen/Qwen2.5-Math-1.5B[@revision]          a hub repo (also hf://...), pinned to the commit the revision names
    demo://demo/pretrained[@seed]              a plug-in's scheme: here the demo family's (bai_core/demo/plugin.py)

Which kind a source is, `SourceRef.parse` says (bai_core/source_ref.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from bai_core import plugins
from bai_core.errors import BaiError
from bai_core.fingerprint import cache_dir, fingerprint_folder
from bai_core.io.atomic import AtomicFolder
from bai_core.io.checkpoint import CONFIG_FILE, INDEX_FILE, TOKENIZER_FILES, Checkpoint
from bai_core.source_ref import SourceRef
from bai_core.storage import (
    ArtifactStore,
    StorageConfig,
    local_path_of,
    open_store,
    s3_endpoint,
    s3_errors,
    s3_filesystem,
)

# Only what a merge needs: never pickles, never code (trust_remote_code stays off).
HUB_PATTERNS = ["*.safetensors", INDEX_FILE, CONFIG_FILE, *TOKENIZER_FILES, "*.jinja"]


@dataclass(frozen=True)
class FetchedCheckpoint:
    source: str
    path: Path
    fingerprint: str
    revision: str | None = None  # hub commit sha, or the S3 listing digest


def fetch(source: str, storage: StorageConfig | None = None, store: ArtifactStore | None = None) -> FetchedCheckpoint:
    """Resolve `source` to a validated local checkpoint folder and its content fingerprint. `storage`: the run's
    storage section (its S3 endpoint; its store, unless `store` is the one already open). A plug-in's scheme
    fetches through the store where it keeps what it builds (the demo family); without storage, bai's cache."""
    ref = SourceRef.parse(source)
    if ref.kind == "scheme":
        if store is None and storage is not None:
            store = open_store(storage)
        path, revision = plugins.checkpoint_scheme(ref.scheme).fetch(source, store), None
    elif ref.kind == "s3":
        path, revision = _fetch_s3(source, s3_endpoint(storage))
    elif ref.kind == "local":
        path, revision = local_path_of(source).resolve(), None
    else:
        try:
            path, revision = _fetch_hub(source, ref.repo, ref.revision)
        except BaiError as e:
            if ref.explicit_hub:
                raise
            raise BaiError(f"{e} (or, if you meant a local folder: there is none at "
                           f"{Path(source).expanduser().resolve()})") from None
    Checkpoint.open(path)  # a clear error now for a folder that is not a checkpoint
    return FetchedCheckpoint(source, path, fingerprint_folder(path), revision)


class CheckpointRef(BaseModel):
    """A fetched input checkpoint of a run: its role, source and content fingerprint (valid on any machine that can
    fetch it). JSON-able, so it crosses process and machine boundaries."""

    role: str
    source: str
    fingerprint: str
    revision: str | None = None

    @property
    def uri(self) -> str:
        return resolvable_uri(self.source, self.revision)


def resolvable_uri(source: str, revision: str | None = None) -> str:
    """A source as a manifest records it, resolvable wherever the manifest is read: s3:// and schemes as given, a
    local folder as its absolute file:// URI (never relative to where the command ran), a hub id pinned to the
    commit it resolved to (org/name@<sha>)."""
    ref = SourceRef.parse(source)
    if ref.kind == "local":
        return local_path_of(source).resolve().as_uri()
    if ref.kind == "hub" and revision:
        return f"{ref.repo}@{revision}"
    return source  # s3:// and a plug-in's scheme as given


def fetch_checkpoint(role: str, source: str, storage: StorageConfig) -> CheckpointRef:
    fetched = fetch(source, storage)
    return CheckpointRef(role=role, source=source, fingerprint=fetched.fingerprint, revision=fetched.revision)


def local_model(source: str, fingerprint: str, storage: StorageConfig, store_key: str | None = None) -> Path:
    """A model of this run on this machine: an artifact of the store under `store_key` (a merge, the RL actor),
    materialized here if needed, or a fetched source whose content must not have changed since this run's fetch."""
    store = open_store(storage)
    if store_key is not None:
        marker = store.find(store_key)
        if marker is None:
            raise BaiError(f"{source}: the artifact is missing or altered; run the pipeline again")
        return store.materialize(store_key, marker)
    fetched = fetch(source, storage, store)
    if fetched.fingerprint != fingerprint:
        raise BaiError(f"{source}: content changed since it was fetched in this run; run the pipeline again")
    return fetched.path


def _fetch_s3(source: str, endpoint_url: str | None) -> tuple[Path, str]:

    fs = s3_filesystem(endpoint_url)
    wanted = {CONFIG_FILE, INDEX_FILE, *TOKENIZER_FILES}
    with s3_errors(source, endpoint_url):
        try:
            listing = fs.ls(source.rstrip("/"), detail=True, refresh=True)
        except FileNotFoundError:
            raise BaiError(f"{source}: no such S3 prefix") from None
        files = sorted(
            (Path(e["name"]).name, e["size"], e.get("ETag"), e["name"])
            for e in listing
            if e["type"] == "file" and (Path(e["name"]).name in wanted or e["name"].endswith((".safetensors", ".jinja")))
        )
        if not any(name == CONFIG_FILE for name, *_ in files):
            raise BaiError(f"{source}: no config.json under this prefix (is it a checkpoint folder?)")
        digest = hashlib.sha256(json.dumps([f[:3] for f in files]).encode()).hexdigest()
        folder = cache_dir() / "sources" / "s3" / digest[:32]
        if folder.is_dir():
            return folder, digest
        with AtomicFolder(folder, overwrite=True) as staging:
            for name, _, _, remote in files:
                fs.get_file(remote, str(staging.path / name))
    return folder, digest


def _fetch_hub(source: str, repo: str, revision: str | None) -> tuple[Path, str]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        # The snapshot folder is named by the commit sha: the revision resolved once and for all.
        path = Path(snapshot_download(repo, revision=revision, allow_patterns=HUB_PATTERNS))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        raise BaiError(
            f"{source}: cannot reach the Hugging Face hub and the model is not in the local cache ({type(e).__name__}); "
            "on a machine without network, give a local folder or an s3:// copy instead "
            "(or pre-download it and set HF_HUB_OFFLINE=1)"
        ) from None
    except RepositoryNotFoundError:
        raise BaiError(f"{source}: no such repository on the hub (or it is private: set HF_TOKEN)") from None
    except GatedRepoError:
        raise BaiError(f"{source}: gated repository; accept its terms on the hub and set HF_TOKEN") from None
    except RevisionNotFoundError:
        raise BaiError(f"{source}: revision {revision!r} not found") from None
    return path, path.name

