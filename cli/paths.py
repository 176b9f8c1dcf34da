"""Path arguments as bai prints locations: a local path, a `file://` URI, or (where a verb reads a file) `s3://`.

`bai run` ends with lines such as `metrics: file:///.../metrics.jsonl`; pasting that URI back into `bai diagnose`
must work, and so must the `s3://` one a run on S3 prints.
"""

from __future__ import annotations

from pathlib import Path

from bai_core.errors import BaiError


def path_argument(text: str) -> Path | str:
    """argparse type: a local path or a file:// URI -> Path; an s3:// URI stays as given (see `local_file`)."""
    from bai_core.storage import local_path_of

    return text if text.startswith("s3://") else local_path_of(text)


def local_file(argument: Path | str, endpoint_url: str | None = None) -> Path:
    """A file to read: the local one, or an s3:// object downloaded once into bai's cache (keyed by its ETag)."""
    if isinstance(argument, Path):
        return argument
    from bai_core.storage import download_s3_file

    return download_s3_file(argument, endpoint_url, "downloads")


def local_only(argument: Path | str, option: str) -> Path:
    """A path where this verb cannot take S3 (it writes there, or reads a whole folder): the local one, or a
    one-line error naming the option."""
    if isinstance(argument, Path):
        return argument
    raise BaiError(f"{option} {argument}: give a local folder or file here (an s3:// checkpoint can be a model of "
                   f"`bai run`, which fetches it)")
