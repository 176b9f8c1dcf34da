"""What plug-ins add to bai, and the one place the stages look it up.

A plug-in adds any of:

- a **checkpoint scheme** (`demo://...`): how its sources are fetched, and the stage a source needs built first (the
  demo family trains once per size and seed, as a stage of its own before the fetches);
- a **prompt scheme**: RL prompt rows for its sources;
- a **verifier**: a verifiable reward's rule for a final answer (`train.reward[].verifiable`);
- an **evaluation suite**: lm-eval tasks with their primary metrics, the folder of their YAML (an lm-eval
  `include_path`), and the lm-eval metadata a run's sources decide.

A plug-in is a module that registers at import with the `add_*` functions below. bai's own toy, the demo family
(`bai_core/demo/plugin.py`), is one; other packages add theirs through the `bai.plugins` entry-point group. Plug-ins
are imported on the first lookup, by name: nothing in the library imports a plug-in, so no stage has a branch for one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from bai_core.errors import BaiError

if TYPE_CHECKING:
    from bai_core.evaluation.catalog import SuiteTask
    from bai_core.evaluation.config import EvaluateSettings
    from bai_core.storage import ArtifactStore

BUILT_IN = ("bai_core.demo.plugin",)
ENTRY_POINT_GROUP = "bai.plugins"


@dataclass(frozen=True)
class SourceBuild:
    """A stage that must run before some sources can be fetched, once per distinct `arguments` in a run."""

    stage: str        # its name in the run's stage table, e.g. demo-family-demo
    scheme: str
    arguments: dict   # JSON-able: it crosses into a Prefect task


@dataclass(frozen=True)
class BuiltSource:
    """What a source build reports: its result (JSON-able, with "uri"), the stage table's cell, a line for the log,
    and a table artifact."""

    result: dict
    shown: str
    note: str
    table: list[dict]
    table_key: str
    table_description: str


# (phase, done, total, detail="") -> None: how a long build reports progress
ProgressReport = Callable[..., None]


@dataclass(frozen=True)
class CheckpointScheme:
    name: str                                          # "demo" for demo://...
    form: str                                          # how its sources are written, for messages
    fetch: Callable[[str, ArtifactStore | None], Path]  # a source -> its local folder (a clear error if unknown)
    builds: Callable[[str], SourceBuild | None] = lambda source: None
    # (arguments, store, progress) -> (BuiltSource, how run_stage had it: cached / adopted / built / rebuilt)
    run_build: Callable[[dict, ArtifactStore, ProgressReport], tuple[BuiltSource, str]] | None = None
    # (phase, done, total) -> the build's overall percentage, for the progress artifact
    build_percent: Callable[[str, int, int], float | None] | None = None
    build_title: Callable[[dict], str] = lambda arguments: "building"


@dataclass(frozen=True)
class PromptScheme:
    name: str
    form: str
    rows: Callable[[str], list[dict]]   # a source -> prompt rows ({"prompt": ..., "answer": ...})


@dataclass(frozen=True)
class Verifier:
    name: str
    # (completion, reference answer, the prompt opened a think block) -> right?
    correct: Callable[[str, object, bool], bool]
    # a reference answer -> why the verifier cannot read it (None: it can)
    unreadable: Callable[[object], str | None] = lambda answer: None


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[SuiteTask, ...]
    include_path: Path | None = None     # the folder of its lm-eval task YAML
    # (settings, the run's checkpoint sources) -> lm-eval metadata for its tasks ({} when none is needed)
    metadata: Callable[[EvaluateSettings, list[str]], dict] = lambda settings, sources: {}
    shown: Callable[[dict], str] = lambda metadata: ""   # the metadata in a few words, for the stage table
    local_data: bool = True              # its tasks build their data: no hub dataset to find offline
    dev: str | None = None               # the suite that scores the same tasks on a dev split (for `bai tune`)


@dataclass
class _Registry:
    schemes: dict[str, CheckpointScheme] = field(default_factory=dict)
    prompt_schemes: dict[str, PromptScheme] = field(default_factory=dict)
    verifiers: dict[str, Verifier] = field(default_factory=dict)
    suites: dict[str, Suite] = field(default_factory=dict)
    loaded: bool = False


_REGISTRY = _Registry()


def add_scheme(scheme: CheckpointScheme) -> None:
    _REGISTRY.schemes[scheme.name] = scheme


def add_prompt_scheme(scheme: PromptScheme) -> None:
    _REGISTRY.prompt_schemes[scheme.name] = scheme


def add_verifier(verifier: Verifier) -> None:
    _REGISTRY.verifiers[verifier.name] = verifier


def add_suite(suite: Suite) -> None:
    _REGISTRY.suites[suite.name] = suite


def _loaded() -> _Registry:
    if not _REGISTRY.loaded:
        _REGISTRY.loaded = True
        for name in BUILT_IN:
            importlib.import_module(name)
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                entry.load()
            except Exception as e:  # a broken third-party plug-in is named, not a traceback from deep inside
                raise BaiError(f"plug-in {entry.name} ({entry.value}): cannot load it: {type(e).__name__}: {e}")
    return _REGISTRY


def scheme_of(source: str) -> str | None:
    """The registered scheme a source is written in (`demo` for demo://...), or None."""
    name, separator, _ = source.partition("://")
    return name if separator and name in _loaded().schemes | _loaded().prompt_schemes else None


def checkpoint_scheme(name: str) -> CheckpointScheme:
    return _loaded().schemes[name]


def checkpoint_schemes() -> dict[str, CheckpointScheme]:
    return dict(_loaded().schemes)


def prompt_scheme(name: str) -> PromptScheme | None:
    return _loaded().prompt_schemes.get(name)


def prompt_schemes() -> dict[str, PromptScheme]:
    return dict(_loaded().prompt_schemes)


def verifier(name: str) -> Verifier | None:
    return _loaded().verifiers.get(name)


def verifiers() -> dict[str, Verifier]:
    return dict(_loaded().verifiers)


def suite(name: str) -> Suite | None:
    return _loaded().suites.get(name)


def suites() -> dict[str, Suite]:
    return dict(_loaded().suites)
