"""A merge killed midway leaves nothing at OUT that looks complete, and the next run cleans up and succeeds."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def merge_command(family, out: Path, sft: Path) -> list[str]:
    return [sys.executable, "-m", "bai.cli", "merge", "--pretrained", str(family["pretrained"]),
            "--instruct", str(family["instruct"]), "--reasoning", str(family["reasoning"]),
            "--output", str(out), "--stage1-output", str(sft), "--workers", "1"]


def start_and_signal_mid_merge(command: list[str], out: Path, sig: int) -> tuple[int, str]:
    """Start the merge, wait until its temporary output holds weight bytes, then send `sig`."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        temps = list(out.parent.glob(f".{out.name}.bai-tmp-*/*.safetensors"))
        if temps and temps[0].stat().st_size > 0:
            proc.send_signal(sig)
            break
        time.sleep(0.002)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode not in (0, None), "the merge finished before it could be interrupted"
    return proc.returncode, stderr


def leftovers(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(".") and out.name in p.name]


def test_sigkill_mid_merge_never_publishes_and_the_rerun_cleans_up(medium_family, tmp_path):
    out, sft = tmp_path / "bai", tmp_path / "sft"
    returncode, _ = start_and_signal_mid_merge(merge_command(medium_family, out, sft), out, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert not out.exists() and not sft.exists()
    assert leftovers(out)  # the hidden temporary is all that remains

    rerun = subprocess.run(merge_command(medium_family, out, sft), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "model.safetensors").is_file() and (sft / "model.safetensors").is_file()
    assert leftovers(out) == [] and leftovers(sft) == []


def test_sigterm_mid_merge_removes_its_temporaries(medium_family, tmp_path):
    out, sft = tmp_path / "bai", tmp_path / "sft"
    returncode, stderr = start_and_signal_mid_merge(merge_command(medium_family, out, sft), out, signal.SIGTERM)
    assert returncode == 143
    assert "Traceback" not in stderr
    assert not out.exists() and not sft.exists()
    assert leftovers(out) == [] and leftovers(sft) == []
