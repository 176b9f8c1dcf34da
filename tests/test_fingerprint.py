"""Fingerprints follow content, not location, and a file is hashed again only when it changes."""

from __future__ import annotations

import os
import shutil

import bai_core.fingerprint as fp


def test_fingerprint_follows_content_not_location(family, tmp_path):
    copy = shutil.copytree(family["instruct"], tmp_path / "elsewhere")
    assert fp.fingerprint_folder(copy) == fp.fingerprint_folder(family["instruct"])
    assert fp.fingerprint_folder(family["instruct"]) != fp.fingerprint_folder(family["reasoning"])

    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(data)
    assert fp.fingerprint_folder(copy) != fp.fingerprint_folder(family["instruct"])


def test_tokenizer_and_config_are_part_of_the_fingerprint(family, tmp_path):
    copy = shutil.copytree(family["instruct"], tmp_path / "copy")
    before = fp.fingerprint_folder(copy)
    (copy / "chat_template.jinja").write_text("{{ messages }}")
    assert fp.fingerprint_folder(copy) != before
    (copy / "notes.txt").write_text("not part of the model")
    after_template = fp.fingerprint_folder(copy)
    (copy / "notes.txt").write_text("still not part of the model")
    assert fp.fingerprint_folder(copy) == after_template


def test_files_are_hashed_once_until_they_change(family, tmp_path, monkeypatch):
    copy = shutil.copytree(family["pretrained"], tmp_path / "copy")
    hashed = []
    real = fp.file_sha256
    monkeypatch.setattr(fp, "file_sha256", lambda path: hashed.append(path.name) or real(path))

    first = fp.fingerprint_folder(copy)
    assert "model.safetensors" in hashed
    hashed.clear()
    assert fp.fingerprint_folder(copy) == first
    assert hashed == []  # memoized: no file was read

    weights = copy / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert fp.fingerprint_folder(copy) == first  # same bytes, so the same fingerprint...
    assert hashed == ["model.safetensors"]  # ...but the touched file was hashed again
