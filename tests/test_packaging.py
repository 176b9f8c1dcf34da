"""What a user installs and reads: the wheel holds every module of the tree under its own names (nothing called
`tasks`, `flows` or `cli` at the top of site-packages), and the README is an entry point whose links all resolve."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder in the tree -> where pyproject.toml installs it
INSTALLED_AS = {"bai_core": "bai_core", "tasks": "bai/tasks", "flows": "bai/flows", "cli": "bai/cli"}


def build_wheel(out: Path) -> Path:
    """A wheel of a copy of the tree (setuptools builds in the source folder; the checkout stays clean)."""
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                 "bai-artifacts", ".pytest_cache"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
               "-w", str(out), str(source)]
    if importlib.util.find_spec("setuptools") is not None:  # offline when the build backend is already here
        command.insert(4, "--no-build-isolation")
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    [wheel] = out.glob("bai-*.whl")
    return wheel


def test_the_wheel_installs_every_module_under_bai_and_nothing_named_tasks_or_flows(tmp_path):
    names = set(zipfile.ZipFile(build_wheel(tmp_path)).namelist())
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"bai_core", "bai"}
    expected = {f"{INSTALLED_AS[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
                for folder in INSTALLED_AS for path in (ROOT / folder).rglob("*.py")}
    assert expected - names == set(), "modules of the tree missing from the wheel (pyproject.toml's package list)"
    shipped = {path.relative_to(ROOT).as_posix() for path in (ROOT / "bai_core/demo/shipped").rglob("*")
               if path.is_file()}
    assert shipped and shipped <= names  # the shipped demo family travels with the package
    assert "bai_core/demo/suites/bai_demo/bai_demo.yaml" in names


LINK = re.compile(r"\]\(([^)\s]+)\)")


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:", "#", "data:")):
            continue
        if not (page.parent / target.split("#")[0]).exists():
            broken.append(f"{page.relative_to(ROOT)}: {target}")
    return broken


def test_the_readme_is_an_entry_point_and_every_link_in_the_docs_resolves():
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 250
    pages = [readme, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "research").rglob("*.md")),
             ROOT / "benchmarks" / "README.md"]
    assert len(LINK.findall(readme.read_text())) >= 10  # it links to the guide
    assert [link for page in pages for link in broken_links(page)] == []
    linked = {target for target in LINK.findall(readme.read_text())}
    assert {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")} <= linked  # every guide page is reachable


# What the `train`, `eval` and `pipeline` extras bring (pyproject.toml); the base install has none of it.
EXTRA_MODULES = ("torch", "transformers", "trl", "lm_eval", "prefect", "s3fs", "math_verify", "datasets",
                 "huggingface_hub", "tokenizers", "accelerate")
BLOCKER = '''
import sys
BLOCKED = {blocked!r}

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, Blocker())
'''


def bai_without_extras(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """`bai ...` in a process where importing any extra's module fails, as on a base install."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(EXTRA_MODULES)))
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "bai.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_merge_and_diagnose_run_on_the_base_install_and_other_verbs_name_their_extra(family, tmp_path):
    merged = bai_without_extras(tmp_path, "merge", *[f"--{role}={family[role]}" for role in family],
                                "--output", str(tmp_path / "bai"), "--json")
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert (tmp_path / "bai" / "model.safetensors").is_file()
    # the tokenizer check rendered the chat templates there too (jinja2 is a base dependency)
    tokenizers = json.loads(merged.stdout)["manifest"]["tokenizers"]
    assert tokenizers["inputs"]["reasoning"]["chat_template_turn_end"] == "</s>"
    assert tokenizers["inputs"]["reasoning"]["generation_prompt_opens_think"] is True

    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": s, "length/mean": 30.0, "reward/mean": 0.5}) + "\n"
                           for s in range(1, 41)))
    diagnosed = bai_without_extras(tmp_path, "diagnose", str(log), "--json", "--plot", str(tmp_path / "plots"))
    assert diagnosed.returncode == 0, diagnosed.stderr[-2000:]
    assert json.loads(diagnosed.stdout)["sequence_length_collapse"]["detected"] is False

    for verb, extra in (["run", "configs/demo.yaml"], "pipeline"), (["eval", "demo://demo/instruct"], "eval"):
        refused = bai_without_extras(tmp_path, *verb)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr[-2000:]
        # this runs from the checkout (an editable install): what installs the extra here, not a bai from PyPI
        assert f"pip install -e '.[{extra}]'" in refused.stderr
