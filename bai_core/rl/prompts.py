"""RL prompts: a JSONL / parquet file, s3:// object or hub dataset with a prompt column, or a plug-in's scheme
(`prompt` unless `prompt_column` says otherwise). A prompt is text or chat messages ([{"role": "user", "content":
...}, ...]); other columns (e.g. the `answer` a verifiable reward reads) travel with it to the reward functions, as
TRL passes them.

    prompts.jsonl, data.parquet  a local file
    s3://bucket/prompts.jsonl    an object (endpoint and keys from the environment)
    org/dataset[@revision][:split]   a hub dataset (split default train; its configuration in `subset`)
    demo://demo/rl[@seed]        a plug-in's prompts (bai_core/plugins.py): here the demo task's RL split
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bai_core import plugins
from bai_core.errors import BaiError

if TYPE_CHECKING:
    from bai_core.rl.config import PromptSettings
    from bai_core.storage import StorageConfig


@dataclass(frozen=True)
class PromptSet:
    source: str
    rows: list[dict]
    fingerprint: str  # of the rows themselves, whatever the source
    conversational: bool

    @property
    def columns(self) -> list[str]:
        return sorted(self.rows[0])


def load_prompts(spec: PromptSettings | str, storage: StorageConfig | None = None) -> PromptSet:
    """The prompt rows, checked, as TRL reads them: the prompt in `prompt`, the reference answer (if any) in
    `answer`, whatever the source calls them; other columns as they are. `storage`: the run's (its S3 endpoint)."""
    from bai_core.rl.config import PromptSettings

    spec = PromptSettings(source=spec) if isinstance(spec, str) else spec
    source = spec.source
    if (scheme := plugins.prompt_scheme(plugins.scheme_of(source) or "")) is not None:
        rows = scheme.rows(source)
    elif source.startswith("s3://"):
        from bai_core.storage import download_s3_file, s3_endpoint

        try:
            local = download_s3_file(source, s3_endpoint(storage), "prompts")
        except BaiError as e:
            raise BaiError(f"prompts {e}") from None
        rows = _file_rows(local, source)
    elif Path(source).expanduser().suffix in (".jsonl", ".json", ".parquet") or Path(source).expanduser().exists():
        rows = _file_rows(Path(source).expanduser(), source)
    elif "/" in source:
        rows = _hub_rows(source, spec.subset)
    else:
        forms = "".join(f" or {s.form}" for s in plugins.prompt_schemes().values())
        raise BaiError(f"prompts {source}: not a file, s3:// object, hub dataset{forms}")
    if not rows:
        raise BaiError(f"prompts {source}: no prompts in it")
    column = spec.prompt_column
    for number, row in enumerate(rows, 1):
        if column not in row:
            raise BaiError(f"prompts {source}: no `{column}` column (columns: {', '.join(sorted(row)) or 'none'})"
                           if number == 1 else f"prompts {source}: row {number} has no `{column}`")
        if not _valid_prompt(row[column]):
            raise BaiError(f"prompts {source}: row {number}: `{column}` must be text or a list of "
                           "{role, content} messages")
    rows = [_as_trl_row(row, spec) for row in rows]
    conversational = isinstance(rows[0]["prompt"], list)
    if any(isinstance(row["prompt"], list) != conversational for row in rows):
        raise BaiError(f"prompts {source}: mixes text prompts and chat prompts")
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
    return PromptSet(source, rows, f"sha256:{digest}", conversational)


def _as_trl_row(row: dict, spec: PromptSettings) -> dict:
    """The source's columns renamed to TRL's `prompt` and bai's `answer`; the instruction appended; text made a user
    message when asked."""
    row = dict(row)
    prompt = row.pop(spec.prompt_column)
    if spec.answer_column != "answer" and spec.answer_column in row:
        row["answer"] = row.pop(spec.answer_column)
    if spec.instruction:
        if isinstance(prompt, str):
            prompt = f"{prompt}\n{spec.instruction}"
        else:
            prompt = [*prompt[:-1], {**prompt[-1], "content": f"{prompt[-1]['content']}\n{spec.instruction}"}]
    if spec.chat and isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    return {**row, "prompt": prompt}


def _valid_prompt(prompt) -> bool:
    if isinstance(prompt, str):
        return bool(prompt)
    return isinstance(prompt, list) and bool(prompt) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt)


def _file_rows(path: Path, source: str) -> list[dict]:
    if not path.is_file():
        raise BaiError(f"prompts {source}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several types for a file that is not parquet
            raise BaiError(f"prompts {source}: not a readable parquet file ({type(e).__name__})") from None
    rows = []
    text = path.read_text()
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise BaiError(f"prompts {source}: not valid JSON ({e.msg}, line {e.lineno})") from None
        return [row if isinstance(row, dict) else {} for row in rows]
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise BaiError(f"prompts {source}: line {number} is not a JSON object") from None
            rows.append(row if isinstance(row, dict) else {})
    return rows


def _hub_rows(source: str, subset: str | None) -> list[dict]:
    name, _, split = source.removeprefix("hf://").partition(":")
    repo, _, revision = name.partition("@")
    try:
        from datasets import load_dataset

        dataset = load_dataset(repo, subset, split=split or "train", revision=revision or None)
    except Exception as e:  # offline, missing, gated, no such split: all one line for the user
        raise BaiError(f"prompts {source}: cannot load this hub dataset ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:160]}); on a machine without network give a local file") from None
    return [dict(row) for row in dataset]
