"""Where each kind of artifact lives in the artifact store: the one place its prefixes are spelled.

    families/<size>-seed<N>-<recipe>/   a demo family (demo/publish.py)
    merges/<stage>-<key>/               M_sft or M_bai (merge/stage.py)
    train/<key>/                        an RL run: checkpoint, metrics, verdicts, plots, actor (rl/run_store.py)
    evaluations/<key>/                  a model's scores (evaluation/stage.py)
    tune/<key>/                         a tuning trial: its weights' scores on the dev split (tune/trial.py)
    runs/<name>/<flow run id>.json      a pipeline run's summary
    reports/<name>-<kind>/              a comparison's or a sweep's table and plot

Keys are cut to 24 hex digits in folder names (96 bits: no collision in any store a person will fill).
"""

from __future__ import annotations

KEY_DIGITS = 24


def family_folder(size: str, seed: int, recipe: str) -> str:
    return f"families/{size}-seed{seed}-{recipe}"


def merge_folder(stage: str, key: str) -> str:
    return f"merges/{stage}-{key[:KEY_DIGITS]}"


def train_folder(key: str) -> str:
    return f"train/{key[:KEY_DIGITS]}"


def actor_folder(key: str) -> str:
    """The RL actor a train key published (its marker holds the TrainRef)."""
    return f"{train_folder(key)}/actor"


def evaluation_folder(key: str) -> str:
    return f"evaluations/{key[:KEY_DIGITS]}"


def trial_folder(key: str) -> str:
    return f"tune/{key[:KEY_DIGITS]}"


def run_summary(name: str, flow_run_id: str) -> str:
    return f"runs/{name}/{flow_run_id}.json"


def report_folder(name: str, kind: str) -> str:
    return f"reports/{name}-{kind}"
