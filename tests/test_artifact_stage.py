"""The one stage protocol (bai_core.artifact_stage): key -> published? -> lock -> published? -> build, and how each
result was had. A toy stage over a real local store, so each outcome can be forced, the race included."""

from __future__ import annotations

import threading
import time

from pydantic import BaseModel

from bai_core.artifact_stage import ArtifactStage, run_stage
from bai_core.fingerprint import fingerprint_folder
from bai_core.locks import exclusive
from bai_core.storage import ArtifactStore


class Note(BaseModel):
    text: str


class NoteStage(ArtifactStage[Note]):
    """Writes one file holding `text` (named config.json: a file the store fingerprints); its key is the text."""

    def __init__(self, store: ArtifactStore, text: str):
        self.store, self.text, self.builds = store, text, 0

    def compute_key(self) -> str:
        return f"note-{self.text}"

    def folder(self) -> str:
        return f"notes/{self.key}"

    def recorded(self, marker: dict) -> Note:
        return Note.model_validate(marker["result"])

    def build(self) -> Note:
        self.builds += 1
        return publish(self.store, self.folder(), self.key, self.text)


def publish(store: ArtifactStore, folder: str, key: str, text: str) -> Note:
    store.local_path(folder).mkdir(parents=True, exist_ok=True)
    (store.local_path(folder) / "config.json").write_text(text)
    note = Note(text=text)
    store.publish(folder, {"cache_key": key, "fingerprint": fingerprint_folder(store.local_path(folder)),
                           "result": note.model_dump()})
    return note


def test_built_then_cached_then_rebuilt_when_altered(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    first = NoteStage(store, "a")
    assert run_stage(first) == (Note(text="a"), "built") and first.builds == 1
    again = NoteStage(store, "a")
    assert run_stage(again) == (Note(text="a"), "cached") and again.builds == 0
    (store.local_path(again.folder()) / "config.json").write_text("tampered")
    altered = NoteStage(store, "a")
    assert run_stage(altered) == (Note(text="a"), "rebuilt") and altered.builds == 1
    assert altered.damaged == "config.json is 8 bytes, published as 1"
    assert (store.local_path(altered.folder()) / "config.json").read_text() == "a"


def test_a_marker_of_another_key_is_not_this_stages_result(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    stage = NoteStage(store, "b")
    publish(store, stage.folder(), "some-other-key", "b")  # a folder collision: same place, different key
    assert run_stage(stage)[1] == "built"


def test_a_run_that_waits_on_the_lock_adopts_what_the_holder_published(tmp_path):
    """Forced Adopted: the test holds the artifact's lock, starts a run, publishes while it waits, releases."""
    store = ArtifactStore(str(tmp_path / "store"))
    stage = NoteStage(store, "c")
    outcome, waited = [], threading.Event()
    with exclusive(stage.lock_name()):
        runner = threading.Thread(target=lambda: outcome.append(run_stage(stage, on_wait=waited.set)))
        runner.start()
        assert waited.wait(timeout=30), "the run never found the lock held"
        time.sleep(0.1)
        publish(store, stage.folder(), stage.key, "c")
    runner.join(timeout=30)
    assert outcome == [(Note(text="c"), "adopted")] and stage.builds == 0
