"""The demo family shipped with bai: pinned to the recipe, resolved without training, verified file by file, and
refused in one line when a file was altered; `bai demo ship` makes a built family the shipped one."""

from __future__ import annotations

import json
import shutil

import pytest

from bai_core.demo import publish, shipped
from bai_core.demo.family import MEMBERS, code_without_comments, recipe_id
from bai_core.demo.sizes import SHIPPED_SEEDS

DEMO_SEED = SHIPPED_SEEDS["demo"]


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to train a family fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a demo family build started")

    monkeypatch.setattr(publish, "build_family", refuse)


@pytest.mark.parametrize("size", ["demo", "test"])
def test_the_shipped_family_is_pinned_to_the_recipe(size):
    from bai_core.demo.training import TRAINING_KERNELS

    seed = SHIPPED_SEEDS[size]
    report = shipped.shipped_report(size, seed)
    assert report is not None, f"no {size} family is shipped in bai_core/demo/shipped/{size}-seed{seed}"
    assert report.recipe == recipe_id(size), (
        f"the {size} family's recipe changed ({report.recipe} shipped, {recipe_id(size)} now): rebuild and ship it "
        f"(`bai demo build --size {size} --output DIR`, then `bai demo ship DIR`; see docs/demo-family.md)")
    assert report.size == size and report.seed == seed and report.built_on["cpu"]
    assert report.built_on["kernels"] == {"aten": "DEFAULT", **TRAINING_KERNELS}  # built as every build is


def test_the_shipped_family_resolves_without_training_and_matches_its_fingerprints(tmp_path, no_training):
    from bai_core.sources import fetch
    from bai_core.storage import ArtifactStore

    report = shipped.shipped_report("demo", DEMO_SEED)
    alone = fetch("demo://demo/instruct")  # no store: the package's own folder
    assert alone.path == shipped.shipped_folder("demo", DEMO_SEED) / "instruct"
    assert alone.fingerprint == report.models["instruct"]["fingerprint"]

    store = ArtifactStore(str(tmp_path / "store"))
    family = publish.ensure_demo_family("demo", DEMO_SEED, store)
    assert family.origin == "shipped" and family.root == store.local_path(publish.family_key("demo", DEMO_SEED))
    for member in MEMBERS:
        marker = store.find(publish.member_key("demo", DEMO_SEED, member))
        assert marker["fingerprint"] == report.models[member]["fingerprint"]
    assert publish.ensure_demo_family("demo", DEMO_SEED, store).origin == "store"  # next time: from the store


@pytest.mark.parametrize("damage", ["altered", "missing", "extra"])
def test_an_altered_shipped_family_is_refused_in_one_line_naming_the_file(tmp_path, monkeypatch, capsys, damage,
                                                                           no_training):
    from bai.cli import main

    copy = tmp_path / "shipped"
    shutil.copytree(shipped.shipped_folder("demo", DEMO_SEED), copy / f"demo-seed{DEMO_SEED}")
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", copy)
    member = copy / f"demo-seed{DEMO_SEED}" / "instruct"
    if damage == "altered":
        named = member / "model.safetensors"
        data = bytearray(named.read_bytes())
        data[-1] ^= 1  # one bit of one weight
        named.write_bytes(bytes(data))
    elif damage == "missing":
        named = member / "tokenizer.json"
        named.unlink()
    else:
        named = member / "pytorch_model.bin"
        named.write_bytes(b"not ours")
    assert main(["eval", "demo://demo/instruct", "--store", str(tmp_path / "store")]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error
    assert error.startswith(f"bai: error: {named}: "), error
    assert not (tmp_path / "store" / "families").exists()  # nothing published from it


def test_a_built_family_ships_and_then_resolves_without_training(demo_family, tmp_path, monkeypatch, capsys):
    from bai.cli import main

    monkeypatch.setattr(shipped, "SHIPPED_ROOT", tmp_path / "shipped")
    assert main(["demo", "ship", str(demo_family.root)]) == 0
    folder = shipped.shipped_folder("test", 0)
    assert capsys.readouterr().out.strip() == f"shipped: {folder}"
    files = json.loads((folder / shipped.FILES).read_text())
    assert set(files) == set(MEMBERS) and "model.safetensors" in files["reasoning"]

    monkeypatch.setattr(publish, "build_family", lambda *a, **k: pytest.fail("a demo family build started"))
    family = publish.ensure_demo_family("test", 0)
    assert family.origin == "shipped" and family.report.models == demo_family.report.models

    (tmp_path / "not-a-family").mkdir()
    assert main(["demo", "ship", str(tmp_path / "not-a-family")]) == 1
    assert "no family.json; give a folder written by `bai demo build`" in capsys.readouterr().err


def test_the_recipe_id_follows_code_not_comments_or_docstrings():
    code = '"""A module."""\nX = "# not a comment"\n\n\ndef f(x):\n    """Doubles x \u2014 twice."""\n    return 2 * x  # why\n'
    reworded = ('"""The module,\nreworded."""\nX = "# not a comment"  # a new comment\n\n\ndef f(x):\n'
                '    """Twice x, as documented elsewhere."""\n    # a new comment\n\n    return 2 * x\n')
    assert code_without_comments(code) == code_without_comments(reworded) == (
        'X = "# not a comment"\ndef f(x):\n    return 2 * x')
    for changed in (code.replace("2 * x", "3 * x"), code.replace("# not a comment", "# not a comment!")):
        assert code_without_comments(changed) != code_without_comments(code)
