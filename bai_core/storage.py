"""The artifact store: where pipeline outputs live, over fsspec (a local folder by default, or s3://bucket/prefix).

An artifact is a folder under a key (e.g. `merges/stage1-3f2a...`). It counts as published only once its marker
file, written last, exists: the marker records the artifact's content fingerprint and its files' sizes (and S3
ETags), so a reader can tell a complete, unaltered artifact from a half-uploaded or tampered one without reading it.

Credentials never pass through here as arguments that could be logged: s3fs takes them from the environment
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL) like every AWS tool does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import Field

from bai_core.errors import BaiError
from bai_core.fingerprint import cache_dir, fingerprint_folder
from bai_core.io.atomic import AtomicFolder, remove_stale_temporaries, rename_over, write_atomic
from bai_core.settings import Strict

MARKER = "_bai_complete.json"
S3_ATTEMPTS = 3


class StorageConfig(Strict):
    """Where artifacts and Prefect's cached results live. Credentials are never part of the config."""

    uri: str = Field("bai-artifacts", description="A local folder (default ./bai-artifacts), file:// or s3://b/p.")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; default $AWS_ENDPOINT_URL or AWS.")
    credentials_block: str | None = Field(
        None,
        description="Name of a Prefect Secret block holding {aws_access_key_id, aws_secret_access_key}; "
        "default: the AWS_* environment variables.",
    )


def s3_config() -> dict:
    """botocore settings: a bounded, quick failure for an unreachable endpoint instead of the long default back-off.
    A fresh dict each time, because botocore rewrites the one it is given."""
    return {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": S3_ATTEMPTS, "mode": "standard"}}


def s3_filesystem(endpoint_url: str | None = None):
    import s3fs

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    return s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": endpoint} if endpoint else {},
        config_kwargs=s3_config(),
        skip_instance_cache=True,
        use_listings_cache=False,
    )


@contextmanager
def s3_errors(url: str, endpoint_url: str | None = None) -> Iterator[None]:
    """Turn s3fs/botocore failures into one-line BaiErrors that say what to fix."""
    import botocore.exceptions as bx

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or "the default AWS endpoint"
    try:
        yield
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as e:
        raise BaiError(f"{url}: S3 endpoint {endpoint} is unreachable after {S3_ATTEMPTS} attempts ({e})") from None
    except bx.NoCredentialsError:
        raise BaiError(
            f"{url}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or storage.credentials_block)"
        ) from None
    except PermissionError as e:
        raise BaiError(f"{url}: S3 at {endpoint} refused access ({e}); check the credentials and their rights") from None
    except FileNotFoundError as e:
        if "bucket" in str(e).lower():
            bucket = url.removeprefix("s3://").split("/", 1)[0]
            raise BaiError(f"{url}: bucket {bucket!r} does not exist at {endpoint}") from None
        raise


class ArtifactStore:
    """Published artifacts under a root URI, plus a local working copy of each for the merge engine."""

    def __init__(self, uri: str, endpoint_url: str | None = None):
        self.endpoint_url = endpoint_url
        if uri.startswith("s3://"):
            self.url = uri.rstrip("/")
            self.fs = s3_filesystem(endpoint_url)
            # A local working area per store: S3 artifacts are downloaded here once, merges are staged here.
            digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
            self.local_root = cache_dir() / "artifacts" / digest
        elif "://" not in uri or uri.startswith("file://"):
            self.local_root = Path(uri.removeprefix("file://")).expanduser().resolve()
            self.url = self.local_root.as_uri()
            self.fs = None
        else:
            raise BaiError(f"storage.uri: {uri!r} is neither a local folder, file:// nor s3://")

    @property
    def is_local(self) -> bool:
        return self.fs is None

    def uri(self, key: str) -> str:
        return f"{self.url}/{key}"

    def local_path(self, key: str) -> Path:
        return self.local_root / key

    def check(self) -> None:
        """Fail early, with a clear message, if the store cannot be used (unreachable, no bucket, bad keys)."""
        if self.is_local:
            self.local_root.mkdir(parents=True, exist_ok=True)
            return
        with s3_errors(self.url, self.endpoint_url):
            self.fs.ls(self.url.removeprefix("s3://").split("/", 1)[0], refresh=True)

    def read_marker(self, key: str) -> dict | None:
        if self.is_local:
            path = self.local_path(key) / MARKER
            return json.loads(path.read_text()) if path.is_file() else None
        with s3_errors(self.url, self.endpoint_url):
            try:
                return json.loads(self.fs.cat_file(f"{self.uri(key)}/{MARKER}"))
            except FileNotFoundError:
                return None

    def damage(self, key: str, marker: dict) -> str | None:
        """What makes the published artifact under `key` differ from what its marker records, in a few words
        ("scores.json missing", "model.safetensors is 812 bytes, published as 1024"), or None when it is intact:
        every file the marker lists, at its size (and S3 ETag), nothing more, the checkpoint files' fingerprint
        (locally), and the files published alongside the folder (a train run's metrics and verdicts)."""
        alongside = marker.get("alongside", {})
        listed = {**marker.get("files", {}), **{f"../{name}": entry for name, entry in alongside.items()}}
        found = self._listing(key, list(alongside))
        if found is None:
            return "its folder is missing"
        for name, entry in listed.items():
            shown = name.removeprefix("../")
            if name not in found:
                return f"{shown} missing"
            if found[name]["size"] != entry["size"]:
                return f"{shown} is {found[name]['size']} bytes, published as {entry['size']}"
            if entry.get("etag") is not None and found[name]["etag"] != entry["etag"]:
                return f"{shown} was replaced (its ETag changed)"
        if extra := sorted(set(found) - set(listed)):
            return f"{extra[0]} was added after it was published"
        if self.is_local and fingerprint_folder(self.local_path(key)) != marker["fingerprint"]:
            return "its checkpoint files were altered (their fingerprint changed)"
        return None

    def _listing(self, key: str, alongside: list[str]) -> dict[str, dict] | None:
        """{name: {size, etag}} of the files under `key` (the marker left out) and, as "../NAME", of the files
        named in `alongside` in its parent folder; None when the folder is gone."""
        if self.is_local:
            folder = self.local_path(key)
            if not folder.is_dir():
                return None
            found = {p.name: {"size": p.stat().st_size, "etag": None} for p in folder.iterdir()
                     if p.is_file() and p.name != MARKER and not p.name.startswith(f".{MARKER}")}
        else:
            with s3_errors(self.url, self.endpoint_url):
                try:
                    listing = self.fs.ls(self.uri(key), detail=True, refresh=True)
                except FileNotFoundError:
                    return None
            found = {Path(e["name"]).name: {"size": e["size"], "etag": e.get("ETag")} for e in listing
                     if e.get("type") != "directory" and Path(e["name"]).name != MARKER}
        return {**found, **{f"../{name}": entry for name, entry in self._beside(key, alongside).items()}}

    def _beside(self, key: str, names: list[str] | tuple[str, ...]) -> dict[str, dict]:
        """{name: {size, etag}} of those of `names` that exist in the parent folder of `key`."""
        parent, found = key.rsplit("/", 1)[0], {}
        for name in names:
            if self.is_local:
                if (path := self.local_path(f"{parent}/{name}")).is_file():
                    found[name] = {"size": path.stat().st_size, "etag": None}
                continue
            with s3_errors(self.url, self.endpoint_url):
                try:
                    self.fs.invalidate_cache(self.uri(f"{parent}/{name}"))
                    info = self.fs.info(self.uri(f"{parent}/{name}"))
                except FileNotFoundError:
                    continue
            found[name] = {"size": info["size"], "etag": info.get("ETag")}
        return found

    def find(self, key: str) -> dict | None:
        """The marker of a complete, unaltered artifact under `key`, else None (absent, partial or altered)."""
        return self.find_or_why(key)[0]

    def find_or_why(self, key: str) -> tuple[dict | None, str | None]:
        """(marker, None) for a complete, unaltered artifact under `key`; (None, why) for a published one that was
        damaged since; (None, None) for one never published (or not yet complete)."""
        marker = self.read_marker(key)
        if marker is None:
            return None, None
        if (why := self.damage(key, marker)) is not None:
            return None, why
        return marker, None

    def publish(self, key: str, marker: dict, alongside: tuple[str, ...] = ()) -> dict:
        """Publish the folder at `local_path(key)`: upload it (S3), then write the marker last. Returns the marker.
        `alongside`: names of files already published in the folder's parent that belong to this artifact; the
        marker lists them, so one deleted or cut short makes the artifact count as damaged."""
        folder = self.local_path(key)
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MARKER)
        if alongside:
            beside = self._beside(key, alongside)
            if missing := [name for name in alongside if name not in beside]:
                raise BaiError(f"{self.uri(key)}: {missing[0]} was to be published beside it but is not there")
            marker = {**marker, "alongside": beside}
        if self.is_local:
            marker = {**marker, "files": {p.name: {"size": p.stat().st_size, "etag": None} for p in files}}
            temporary = folder / f".{MARKER}.tmp"
            temporary.write_text(json.dumps(marker, indent=2) + "\n")
            os.replace(temporary, folder / MARKER)
            return marker
        with s3_errors(self.url, self.endpoint_url):
            if self.fs.exists(self.uri(key)):  # leftovers of an upload that died before its marker
                self.fs.rm(self.uri(key), recursive=True)
            self._abort_unfinished_uploads(key)
            for path in files:
                self.fs.put_file(str(path), f"{self.uri(key)}/{path.name}")
            marker = {**marker, "files": self._listing(key, [])}
            self.fs.pipe_file(f"{self.uri(key)}/{MARKER}", (json.dumps(marker, indent=2) + "\n").encode())
        (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n")  # the local copy knows it is complete
        return marker

    def supersede(self, target: str, source: str) -> None:
        """Put the complete artifact at `source` in the place of the one at `target` (a new checkpoint over the last):
        at every moment one of the two keys holds a complete artifact, so a process killed here loses neither.
        Locally two renames (`source` keeps its folder until the second); on S3, which cannot rename, the target's
        marker goes first, then its files, then a server-side copy of the source, then the source."""
        if not self.is_local:
            marker = json.loads((self.local_path(source) / MARKER).read_text())
            with s3_errors(self.url, self.endpoint_url):
                if self.fs.exists(self.uri(target)):
                    self.fs.rm_file(f"{self.uri(target)}/{MARKER}")
                    self.fs.rm(self.uri(target), recursive=True)
                for name in marker["files"]:
                    self.fs.copy(f"{self.uri(source)}/{name}", f"{self.uri(target)}/{name}")
                marker["files"] = self._listing(target, [])
                self.fs.pipe_file(f"{self.uri(target)}/{MARKER}", (json.dumps(marker, indent=2) + "\n").encode())
                self.fs.rm_file(f"{self.uri(source)}/{MARKER}")
                self.fs.rm(self.uri(source), recursive=True)
            (self.local_path(source) / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        remove_stale_temporaries(self.local_path(target))
        rename_over(self.local_path(source), self.local_path(target))  # on S3: the local working copy follows

    def _abort_unfinished_uploads(self, key: str) -> None:
        """A killed multipart upload (s3fs uses one above 100 MiB) leaves no object but keeps its parts, billed,
        until aborted; abort this artifact's before uploading it again."""
        bucket, prefix = self.uri(key).removeprefix("s3://").split("/", 1)
        pending = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=f"{prefix}/")
        for upload in pending.get("Uploads", []):
            self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    def materialize(self, key: str, marker: dict) -> Path:
        """A local folder holding the artifact, downloading it only if this machine lacks an intact copy."""
        folder = self.local_path(key)
        if folder.is_dir() and fingerprint_folder(folder) == marker["fingerprint"]:
            return folder
        if self.is_local:
            raise BaiError(f"{folder}: artifact is missing or altered")
        with AtomicFolder(folder, overwrite=True) as staging:
            with s3_errors(self.url, self.endpoint_url):
                for name in marker["files"]:
                    self.fs.get_file(f"{self.uri(key)}/{name}", str(staging.path / name))
            if fingerprint_folder(staging.path) != marker["fingerprint"]:
                raise BaiError(f"{self.uri(key)}: downloaded content does not match its recorded fingerprint")
            (staging.path / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        return folder

    def put_text(self, key: str, text: str) -> str:
        """A small document (a run summary) written in one piece; returns its URI."""
        return self.put_bytes(key, text.encode())

    def put_bytes(self, key: str, data: bytes) -> str:
        """A small file (a plot, a log) written in one piece; returns its URI."""
        if self.is_local:
            write_atomic(self.local_path(key), data)
        else:
            with s3_errors(self.url, self.endpoint_url):
                self.fs.pipe_file(self.uri(key), data)
        return self.uri(key)

    def get_text(self, key: str) -> str:
        return self.get_bytes(key).decode()

    def get_bytes(self, key: str) -> bytes:
        if self.is_local:
            try:
                return self.local_path(key).read_bytes()
            except FileNotFoundError:
                raise BaiError(f"{self.uri(key)}: not found") from None
        with s3_errors(self.url, self.endpoint_url):
            try:
                return self.fs.cat_file(self.uri(key))
            except FileNotFoundError:
                raise BaiError(f"{self.uri(key)}: not found") from None


def open_store(storage: StorageConfig) -> ArtifactStore:
    """The artifact store a config's `storage` section names."""
    return ArtifactStore(storage.uri, s3_endpoint(storage))


def s3_endpoint(storage: StorageConfig | None) -> str | None:
    """The S3 endpoint a run reads its s3:// inputs from and keeps its store at (None: $AWS_ENDPOINT_URL or AWS)."""
    return storage.endpoint_url if storage is not None else None


def download_s3_file(uri: str, endpoint_url: str | None, kind: str) -> Path:
    """An S3 object as a local file in bai's cache (`<cache>/<kind>/<tag>/<name>`, the tag from its ETag and size,
    so a changed object is downloaded again); a one-line error when it is not there."""
    fs = s3_filesystem(endpoint_url)
    with s3_errors(uri, endpoint_url):
        try:
            info = fs.info(uri)
        except FileNotFoundError:
            raise BaiError(f"{uri}: no such S3 object") from None
        tag = hashlib.sha256(f"{uri}:{info.get('ETag')}:{info.get('size')}".encode()).hexdigest()[:24]
        local = cache_dir() / kind / tag / Path(uri).name
        if not local.is_file():
            write_atomic(local, fs.cat_file(uri))
    return local


def local_path_of(text: str) -> Path:
    """A local path as a user may give it: a path (`~` expanded) or a file:// URI as bai prints them (quoted)."""
    if text.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(text).path))
    return Path(text).expanduser()

