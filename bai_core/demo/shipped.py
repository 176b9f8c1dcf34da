"""The demo family shipped with bai: the `demo`-size family as trained once, part of the package, so that
`demo://demo/<member>` is ready at once and the same on every machine (a family trained elsewhere can differ in its
bits: they depend on the CPU model, not only on the seed).

    bai_core/demo/shipped/demo-seed0/
        family.json              the family's report (recipe id, fingerprints, figures, the machine that built it)
        files.json               every member file's size and sha256, to name a file that was altered
        pretrained/ instruct/ reasoning/ reward/

A shipped family is used only while its recipe id is the code's (a changed recipe makes it stale: the family is then
trained like any other, and a test fails until it is shipped again). It is verified before use: a file that does not
match is refused in one line that names it, never used.

To ship a family after changing the recipe: `bai demo build --size demo --output DIR`, then `bai demo ship DIR`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bai_core.demo.family import MANIFEST, FamilyReport, cached_family, recipe_id
from bai_core.demo.members import MEMBERS
from bai_core.errors import BaiError
from bai_core.fingerprint import file_digests, fingerprint_folder
from bai_core.io.atomic import AtomicFolder

SHIPPED_ROOT = Path(__file__).parent / "shipped"
FILES = "files.json"


def shipped_folder(size: str, seed: int) -> Path:
    return SHIPPED_ROOT / f"{size}-seed{seed}"


def shipped_report(size: str, seed: int) -> FamilyReport | None:
    """The report of the family shipped for this size and seed, whatever its recipe (None if none is shipped)."""
    try:
        return FamilyReport(**json.loads((shipped_folder(size, seed) / MANIFEST).read_text()))
    except FileNotFoundError:
        return None


def shipped_family(size: str, seed: int) -> FamilyReport | None:
    """The shipped family's report when one is shipped for this size, seed and the code's recipe, after checking
    every file against what was shipped; None when none is (or it is stale). An altered file is a BaiError."""
    report = shipped_report(size, seed)
    if report is None or report.recipe != recipe_id(size):
        return None
    verify(shipped_folder(size, seed), report)
    return report


def verify(folder: Path, report: FamilyReport) -> None:
    """Every shipped file is there with its size and sha256, and each member's fingerprint is the report's."""
    try:
        expected = json.loads((folder / FILES).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        raise BaiError(f"{folder / FILES}: missing or unreadable; the shipped demo family cannot be checked "
                       "(reinstall bai, or train the family with `bai demo build --size demo`)") from None
    for member in MEMBERS:
        files = {path.name: path for path in _files(folder / member)}
        digests = file_digests(list(files.values()))
        for name, (size, sha256) in expected[member].items():
            if name not in files:
                raise BaiError(f"{folder / member / name}: missing from the shipped demo family (reinstall bai, or "
                               "train the family with `bai demo build --size demo`)")
            if list(digests[files[name]]) != [size, sha256]:
                raise BaiError(f"{files[name]}: altered (its sha256 is not the one shipped); the demo family is not "
                               "used with it: reinstall bai, or train the family with `bai demo build --size demo`")
        if extra := sorted(set(files) - set(expected[member])):
            raise BaiError(f"{folder / member / extra[0]}: not part of the shipped demo family; the demo family is "
                           "not used with it (remove it, or reinstall bai)")
        if fingerprint_folder(folder / member) != report.models[member]["fingerprint"]:
            raise BaiError(f"{folder / member}: its fingerprint is not the one in {folder / MANIFEST}")


def _files(folder: Path) -> list[Path]:
    """Every file of a member folder (generation_config.json too: it changes what the model generates)."""
    return sorted(path for path in folder.iterdir() if path.is_file()) if folder.is_dir() else []


def ship(built: Path) -> Path:
    """Copy a built family (checked intact against its own report) into the package, with the file list that
    `verify` checks. Replaces a family shipped for the same size and seed."""
    try:
        meta = json.loads((built / MANIFEST).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        raise BaiError(f"{built}: no family.json; give a folder written by `bai demo build`") from None
    report = cached_family(built, meta.get("size"), meta.get("seed"))
    if report is None:
        raise BaiError(f"{built}: not an intact family of the current recipe {recipe_id(meta.get('size', 'demo'))} "
                       f"(its family.json says {meta.get('recipe')}); build it again with this code")
    with AtomicFolder(shipped_folder(report.size, report.seed), overwrite=True) as staging:
        files = {}
        for member in MEMBERS:
            shutil.copytree(built / member, staging.path / member)
            digests = file_digests(_files(staging.path / member))
            files[member] = {path.name: list(digest) for path, digest in digests.items()}
        shutil.copy2(built / MANIFEST, staging.path / MANIFEST)
        (staging.path / FILES).write_text(json.dumps(files, indent=1, sort_keys=True) + "\n")
    return shipped_folder(report.size, report.seed)
