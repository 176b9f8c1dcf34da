"""Scoring on several GPUs with lm-eval's HF backend (`evaluate.processes` > 1), lm-eval's own data-parallel way:
`accelerate launch --multi_gpu --num_processes N`, each process a copy of the model scoring a share of the
questions; lm-eval gathers the answers to rank 0, which writes what the stage publishes. Each process runs
`python -m bai_core.evaluation.parallel JOB.json`: bai's one call of lm-eval (`harness.run_lm_eval`), as in one
process.

lm-eval's HF model splits the questions only over CUDA devices (it counts `torch.cuda.device_count()`): on CPU each
process would score every question. So more than one process is refused where there are not that many GPUs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bai_core import progress
from bai_core.errors import BaiError
from bai_core.evaluation.config import EvaluateSettings
from bai_core.launcher import free_port, start, wait

RESULTS, GENERATIONS = "results.json", "generations.json"


def check_processes(settings: EvaluateSettings, device: str) -> None:
    if settings.processes == 1:
        return
    import torch

    found = torch.cuda.device_count() if device.startswith("cuda") else 0
    if found < settings.processes:
        raise BaiError(f"evaluate.processes {settings.processes}: lm-eval's HF backend splits the questions only over "
                       f"CUDA devices, and {found} {'is' if found == 1 else 'are'} here; set processes: 1, or score "
                       "on a GPU pool (evaluate.deployment)")


def score_on_processes(path: Path, settings: EvaluateSettings, metadata: dict, workdir: Path, timeout_s: float):
    """lm-eval's results and the generations' measurements, scored by `settings.processes` processes."""
    from bai_core.evaluation.harness import Generations

    workdir.mkdir(parents=True, exist_ok=True)
    job = workdir / "job.json"
    job.write_text(json.dumps({"path": str(path), "settings": settings.model_dump(mode="json"),
                               "metadata": metadata, "workdir": str(workdir)}))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(settings.processes), "--main_process_port", str(free_port()),
               "--max_restarts", "0", "-m", "bai_core.evaluation.parallel", str(job)]
    progress.note(f"scoring on {settings.processes} processes: {' '.join(command)}")
    deadline = time.monotonic() + timeout_s

    def overdue() -> bool:
        if time.monotonic() > deadline:
            raise BaiError(f"evaluate: the {settings.processes} processes did not finish within {timeout_s:g} s")
        return False

    launcher = start(command, workdir / "launcher.log")
    wait(launcher, overdue, poll_s=0.5)
    if launcher.returncode != 0:
        lines = [line for line in (workdir / "launcher.log").read_text(errors="replace").splitlines() if line.strip()]
        raise BaiError(f"evaluate: scoring on {settings.processes} processes failed (exit code "
                       f"{launcher.returncode}); its last line: {lines[-1][:300] if lines else '(nothing)'}")
    measured = json.loads((workdir / GENERATIONS).read_text())
    generations = Generations()
    generations.tokens.update(measured["tokens"])
    generations.finished.update(measured["finished"])
    return json.loads((workdir / RESULTS).read_text()), generations


def main(job_file: str) -> int:
    from lm_eval.utils import handle_non_serializable

    from bai_core.evaluation.harness import run_lm_eval, suite_tasks

    job = json.loads(Path(job_file).read_text())
    settings = EvaluateSettings.model_validate(job["settings"])
    results, generations = run_lm_eval(Path(job["path"]), settings, suite_tasks(settings), job["metadata"], "cuda")
    if int(os.environ.get("RANK", "0")) == 0:  # lm-eval returns the gathered results on rank 0 only
        workdir = Path(job["workdir"])
        (workdir / GENERATIONS).write_text(json.dumps({"tokens": generations.tokens,
                                                       "finished": generations.finished}))
        (workdir / RESULTS).write_text(json.dumps(results, default=handle_non_serializable))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
