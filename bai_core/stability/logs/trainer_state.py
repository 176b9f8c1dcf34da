"""TRL's trainer_state.json: `log_history` holds one record per logging step (every TRL version's names), and
`max_steps` is the run's planned length."""

from __future__ import annotations

import json
from pathlib import Path

from bai_core.errors import BaiError
from bai_core.stability.curves import Curves


def recognises(text: str) -> bool:
    head = text.lstrip()[:200_000]
    return head.startswith("{") and '"log_history"' in head


def read(path: Path, text: str) -> Curves:
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise BaiError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    curves = Curves("trl-trainer-state")
    for record in state.get("log_history") or []:
        if isinstance(record, dict):
            curves.add(record)
    if isinstance(state.get("max_steps"), int) and state["max_steps"] > 0:
        curves.planned_steps = state["max_steps"]
    return curves
