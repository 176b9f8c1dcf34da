"""The demo pipeline under CPU-kernel settings: which of the README's figures move with the processor's kernels?

For each setting (family_builds.SETTINGS) and config, `bai run CONFIG` in a process started with the setting,
into a fresh store of its own (the shipped family, its merges, 150 GRPO steps from M_bai, lm-eval scores), and one
row of the figures the README states: M_bai's and the actor's `bai_demo` score and answer tokens, the reward over
the first and the last 30 steps, the KL at the end, the detectors' verdicts, the train stage's seconds.

    .venv/bin/python research/cpu-portability/demo_runs.py [--configs configs/demo.yaml,configs/demo-judge.yaml]
        [--settings default,aten-default,...] [--out demo_runs.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from family_builds import SETTINGS  # noqa: E402


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def figures(summary: dict) -> dict:
    """The README's row of a finished demo run."""
    stages = {row["stage"]: row for row in summary["stages"]}
    outputs = summary["outputs"]
    records = [json.loads(line) for line in local(outputs["metrics"]).read_text().splitlines()]
    verdicts = json.loads(local(outputs["verdicts"]).read_text())
    scores = outputs["scores"]

    def mean(values):
        return round(sum(values) / len(values), 3)

    return {"bai": scores["bai"]["overall"], "actor": scores["actor"]["overall"],
            "bai_tokens": scores["bai"]["mean_answer_tokens"], "actor_tokens": scores["actor"]["mean_answer_tokens"],
            "reward_first_30": mean([r["reward/mean"] for r in records[:30]]),
            "reward_last_30": mean([r["reward/mean"] for r in records[-30:]]),
            "kl_end": round(records[-1].get("kl", 0.0), 3), "steps": len(records),
            "collapse": verdicts["sequence_length_collapse"]["detected"],
            "hockey_stick": verdicts["reward_hockey_stick"]["detected"],
            "train_seconds": round(stages["train"]["seconds"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="configs/demo.yaml,configs/demo-judge.yaml")
    parser.add_argument("--settings", default="default,aten-default,mkl-cbwr-compatible,omp-3-threads,portable")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("demo_runs.jsonl"))
    args = parser.parse_args()
    for name in args.settings.split(","):
        for config in args.configs.split(","):
            with tempfile.TemporaryDirectory(prefix="bai-demo-run-") as store:
                proc = subprocess.run([sys.executable, "-m", "bai.cli", "run", config, "--json",
                                       "--set", f"storage.uri={store}"], capture_output=True, text=True,
                                      env={**os.environ, "HF_HUB_OFFLINE": "1", **SETTINGS[name]}, timeout=3600)
                if proc.returncode != 0:
                    raise SystemExit(f"{config} under {name}: {proc.stderr.strip().splitlines()[-1]}")
                row = {"setting": name, "env": SETTINGS[name], "config": config, **figures(json.loads(proc.stdout))}
            with args.out.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
