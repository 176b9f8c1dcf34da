"""The docs as a newcomer finds them: every shell block in README.md and docs/*.md runs as written, or says why not.

A block is run as a bash script (`set -euo pipefail`) with `.venv/bin` first on PATH (the README tells users to
activate it), in a fresh HOME (so an empty bai cache and Prefect home) and in a fresh folder that holds the checkout's
files, so what the commands write stays there. After the block, HTML comments say what to check:

    <!-- expect: TEXT -->      the output (stdout and stderr) holds TEXT (one comment per text)
    <!-- exit: N -->           the block exits with N (default 0)

A block that cannot run here (minutes long, a GPU, the hub, placeholders to fill in) has, on the line before it,

    <!-- not run by the docs test: WHY -->
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n?", re.S | re.M)
SKIP = re.compile(r"<!-- not run by the docs test: (.+?) -->\s*$")
EXPECT = re.compile(r"<!-- expect: (.+?) -->")
EXIT = re.compile(r"<!-- exit: (\d+) -->")


@dataclass
class Block:
    page: Path
    line: int
    script: str
    skipped: str | None  # why it is not run, or None
    expects: list[str]
    exit_code: int

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def shell_blocks() -> list[Block]:
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) not in SHELL:
                continue
            before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            after = text[match.end():].lstrip("\n")
            comments = re.match(r"((?:<!--.*?-->\s*)*)", after).group(1)
            skipped = SKIP.search(before)
            exit_code = EXIT.search(comments)
            blocks.append(Block(page, text[:match.start()].count("\n") + 1, match.group(2),
                                skipped.group(1) if skipped else None, EXPECT.findall(comments),
                                int(exit_code.group(1)) if exit_code else 0))
    return blocks


BLOCKS = shell_blocks()


def test_every_shell_block_is_run_or_says_why_not():
    assert BLOCKS, "no shell blocks found: the parser is broken"
    for block in BLOCKS:
        if block.skipped is not None:
            assert len(block.skipped.split()) >= 3, f"{block.name}: say why it is not run, in a few words"
        else:
            assert block.expects, f"{block.name}: a run block says what its output shows (<!-- expect: ... -->)"
    assert sum(block.skipped is None for block in BLOCKS) >= 4


@pytest.mark.slow  # ~35 s in all: bai's start-up, lm-eval's, a tiny family's build
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.skipped is None], ids=lambda b: b.name)
def test_a_shell_block_of_the_docs_runs_as_written(block, tmp_path):
    work, home = tmp_path / "checkout", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    for entry in ROOT.iterdir():  # the checkout's files, without what earlier runs wrote
        if entry.name not in {"bai-artifacts", ".git"}:
            (work / entry.name).symlink_to(entry)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PREFECT_", "BAI_", "XDG_", "HF_HOME"))}
    env.update(HOME=str(home), PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
               PREFECT_HOME=str(home / ".prefect"))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == block.exit_code, f"{block.name} exited {proc.returncode}:\n{output[-3000:]}"
    for text in block.expects:
        assert text in output, f"{block.name}: {text!r} not in its output:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
