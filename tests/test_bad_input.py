"""Bad input: one line on stderr naming the culprit, a non-zero exit, no traceback, and nothing left at OUT."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bai.cli import main
from tests.test_merge_correctness import load_all


def run_merge(family, out: Path, *extra: str, capsys) -> tuple[int, str]:
    argv = ["merge", "--pretrained", str(family["pretrained"]), "--instruct", str(family["instruct"]),
            "--reasoning", str(family["reasoning"]), "--output", str(out), *extra]
    code = main(argv)
    return code, capsys.readouterr().err


def assert_clean_failure(code: int, err: str, out: Path, *must_mention: str):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("bai: error: ") and "Traceback" not in err
    for text in must_mention:
        assert text in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.bai-tmp-")]


def rewrite(folder: Path, change):
    tensors = load_all(folder)
    change(tensors)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_missing_folder(family, tmp_path, capsys):
    family = {**family, "instruct": tmp_path / "nope"}
    assert_clean_failure(*run_merge(family, tmp_path / "out", capsys=capsys), tmp_path / "out", "nope", "not found")


def test_missing_config(editable_family, tmp_path, capsys):
    (editable_family["reasoning"] / "config.json").unlink()
    code, err = run_merge(editable_family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", str(editable_family["reasoning"] / "config.json"))


def test_no_weights(editable_family, tmp_path, capsys):
    (editable_family["pretrained"] / "model.safetensors").unlink()
    code, err = run_merge(editable_family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", str(editable_family["pretrained"]), "no safetensors weights")


def test_truncated_safetensors(editable_family, tmp_path, capsys):
    weights = editable_family["instruct"] / "model.safetensors"
    os.truncate(weights, weights.stat().st_size - 100)
    code, err = run_merge(editable_family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", str(weights), "truncated")


@pytest.mark.parametrize("garbage", [b"\xff" * 8 + b"{}", b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"])
def test_corrupt_safetensors(editable_family, tmp_path, capsys, garbage):
    weights = editable_family["reasoning"] / "model.safetensors"
    weights.write_bytes(garbage)
    code, err = run_merge(editable_family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", str(weights), "not a valid safetensors file")


def test_index_naming_a_missing_shard(family_factory, tmp_path, capsys):
    import shutil

    family = {role: shutil.copytree(path, tmp_path / role) for role, path in family_factory(shard_bytes=15_000).items()}
    missing = sorted(family["instruct"].glob("model-*.safetensors"))[-1]
    missing.unlink()
    code, err = run_merge(family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", "model.safetensors.index.json", missing.name)


def test_tensor_names_differ(editable_family, tmp_path, capsys):
    rewrite(editable_family["reasoning"], lambda t: t.update({"extra.weight": torch.zeros(3, dtype=torch.bfloat16)}))
    rewrite(editable_family["reasoning"], lambda t: t.pop("model.norm.weight"))
    code, err = run_merge(editable_family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", "tensor names differ", "'model.norm.weight'", "'extra.weight'")


def test_shape_mismatch(editable_family, tmp_path, capsys):
    name = "model.layers.1.mlp.up_proj.weight"
    rewrite(editable_family["instruct"], lambda t: t.update({name: t[name][:-1].clone()}))
    code, err = run_merge(editable_family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", name, "[64, 32]", "[63, 32]")


def test_architecture_mismatch(editable_family, tmp_path, capsys):
    config_path = editable_family["instruct"] / "config.json"
    config = json.loads(config_path.read_text())
    config["model_type"] = "qwen2"
    config_path.write_text(json.dumps(config))
    code, err = run_merge(editable_family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", "architecture mismatch", "model_type", str(config_path))


@pytest.mark.parametrize("flag,value", [("--alpha", "1.5"), ("--instruct-weight", "-0.1"), ("--alpha", "nan")])
def test_weights_outside_unit_interval(family, tmp_path, capsys, flag, value):
    code, err = run_merge(family, tmp_path / "out", flag, value, capsys=capsys)
    key = flag.removeprefix("--").replace("-", "_")
    assert_clean_failure(code, err, tmp_path / "out", key)


def test_nan_in_an_input_is_reported_with_the_tensor(editable_family, tmp_path, capsys):
    name = "model.layers.0.self_attn.q_proj.weight"

    def poison(t):
        t[name][3, 4] = math.nan

    rewrite(editable_family["pretrained"], poison)
    code, err = run_merge(editable_family, tmp_path / "out", "--stage1-output", str(tmp_path / "sft"), capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", name, "NaN or Inf")
    assert not (tmp_path / "sft").exists()  # stage 1 was fine, but a failed merge publishes nothing


def test_overflow_to_inf_in_a_narrower_dtype(family_factory, tmp_path, capsys):
    import shutil

    family = {role: shutil.copytree(path, tmp_path / role) for role, path in family_factory(dtype="float32").items()}
    rewrite(family["reasoning"], lambda t: t["model.norm.weight"].fill_(1e6))
    code, err = run_merge(family, tmp_path / "out", "--dtype", "float16", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", "'model.norm.weight'", "NaN or Inf")


def test_mixed_dtypes_are_refused_under_auto(family_factory, tmp_path, capsys):
    family = {**family_factory(), "instruct": family_factory(dtype="float32")["instruct"]}
    code, err = run_merge(family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", "mixed dtypes", "BF16", "F32", "--dtype")
    assert main(["merge", *sum(([f"--{r}", str(p)] for r, p in family.items()), []),
                 "--output", str(tmp_path / "out"), "--dtype", "bfloat16"]) == 0


def test_differing_integer_buffers_are_refused(editable_family, tmp_path, capsys):
    for role, folder in editable_family.items():
        offset = 1 if role == "reasoning" else 0
        rewrite(folder, lambda t: t.update({"model.positions": torch.arange(5, dtype=torch.int64) + offset}))
    code, err = run_merge(editable_family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", "'model.positions'", "not floating point", "identical")


def test_existing_output_is_refused_unless_overwrite(family, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = run_merge(family, out, capsys=capsys)
    assert code == 1 and "already exists" in err and "--overwrite" in err
    assert (out / "keep.txt").read_text() == "mine"
    assert run_merge(family, out, "--overwrite", capsys=capsys)[0] == 0
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_pickle_checkpoints_are_refused_with_a_hint(editable_family, tmp_path, capsys):
    folder = editable_family["instruct"]
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 not actually loaded")
    code, err = run_merge(editable_family, tmp_path / "out", capsys=capsys)
    assert_clean_failure(code, err, tmp_path / "out", str(folder / "pytorch_model.bin"), "safetensors")


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("target", ["instruct", "stage1-output"])
def test_an_output_onto_an_input_is_refused_even_with_overwrite(family, tmp_path, capsys, target):
    """The destructive case: --overwrite names an input (as the output, or as where M_sft goes). Refused in one line
    that names the folder, and the input is left byte for byte as it was."""
    before = folder_bytes(family["instruct"])
    if target == "instruct":
        code, err = run_merge(family, family["instruct"], "--overwrite", capsys=capsys)
    else:
        code, err = run_merge(family, tmp_path / "out", "--stage1-output", str(family["instruct"]), "--overwrite",
                              capsys=capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("bai: error: ") and str(family["instruct"]) in err and "input" in err
    assert folder_bytes(family["instruct"]) == before
    assert not (tmp_path / "out").exists()


def test_a_real_subprocess_prints_no_traceback(family, tmp_path):
    """The same through the installed console script, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "bai.cli", "merge", "--pretrained", str(family["pretrained"]),
         "--instruct", str(tmp_path / "missing"), "--reasoning", str(family["reasoning"]),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"bai: error: {tmp_path / 'missing'}: checkpoint folder not found"]
    assert not (tmp_path / "out").exists()
