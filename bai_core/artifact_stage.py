"""One shape for every stage that makes an artifact (the merges, the train stage, scoring, the demo family):

    key -> published? -> lock -> published? -> build -> publish

A stage says its content key, the store folder its result is published under, how to build it, and what result a
published marker records. `run_stage` does the rest, once for all of them, and says how the result was had:

- "cached":  published intact before this call asked (by an earlier run, on this machine or another);
- "adopted": another run was building it; this one waited on the artifact's lock and took what it published;
- "built":   built here and published;
- "rebuilt": built here again, because what was published under its key was damaged since (a file deleted or cut
  short: `damaged` says which, and the run's log says it too).

The marker in the store is the cache record. Orchestrators (the Prefect tasks) report what this decided; they keep
no second record that could disagree with the store, so a deleted or altered artifact is rebuilt, never trusted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

from bai_core import progress
from bai_core.locks import exclusive
from bai_core.storage import ArtifactStore

Result = TypeVar("Result", bound=BaseModel)
How = Literal["cached", "adopted", "built", "rebuilt"]


class ArtifactStage(ABC, Generic[Result]):
    """A stage whose result is one artifact in `store`, under `folder()`, published with a marker naming `key()`."""

    store: ArtifactStore
    # What the lock's wait message calls the work, e.g. "merging", "training", "scoring".
    doing: str = "building"

    @abstractmethod
    def compute_key(self) -> str:
        """The content key: a hash of everything that changes the result, and nothing that does not."""

    @abstractmethod
    def folder(self) -> str:
        """The store key the result's marker is published under."""

    @abstractmethod
    def build(self) -> Result:
        """Make the artifact and publish it (its marker last, naming `key()` as its cache_key)."""

    def recorded(self, marker: dict) -> Result:
        """The result a published marker records (what the default `published()` reads; a stage published as
        several artifacts overrides `published()` instead)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither recorded() nor published()")

    @cached_property
    def key(self) -> str:
        return self.compute_key()

    # Why the artifact published under this key no longer counts (a file missing or cut short), once published()
    # has found it so; None when it was intact, stale or never published.
    damaged: str | None = None

    def published(self) -> Result | None:
        """The result of an intact artifact published under this key, or None (absent, partial, altered, stale)."""
        marker = self.store.read_marker(self.folder())
        if marker is None or marker.get("cache_key") != self.key:
            return None
        if (why := self.store.damage(self.folder(), marker)) is not None:
            self.damaged = why
            return None
        return self.recorded(marker)

    def lock_name(self) -> str:
        return f"{self.store.url}/{self.folder()}"


def run_stage(stage: ArtifactStage[Result], on_wait: Callable[[], None] | None = None) -> tuple[Result, How]:
    """The stage's result and how it was had: found published, adopted from a run beside this one, or built here."""
    if (result := stage.published()) is not None:
        return result, "cached"
    folder = stage.folder()
    wait = on_wait or (lambda: progress.note(f"waiting for another run {stage.doing} {folder}"))
    with exclusive(stage.lock_name(), on_wait=wait):
        if (result := stage.published()) is not None:
            return result, "adopted"
        if stage.damaged is not None:
            progress.note(f"{stage.store.uri(folder)}: {stage.damaged}; building it again", warning=True)
            return stage.build(), "rebuilt"
        return stage.build(), "built"
