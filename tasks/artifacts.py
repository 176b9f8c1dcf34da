"""What the tasks show in the Prefect UI: progress artifacts, created lazily; the run's story in its log (the lines
`bai run` prints off a terminal); a log filter that keeps user errors to their one-line message; and the tables
of a comparison or a sweep (`publish_report`, shared by both flows)."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.exceptions import MissingContextError, TerminationSignal

from bai_core import layout, progress, report
from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.io import tables
from bai_core.storage import open_store


class ProgressArtifact:
    """A progress artifact for a long step, created on its first report (a cached or adopted step, which reports
    nothing, shows no stray 0% bar) and updated at most every 2%. Every report also goes to `bai_core.progress`
    (the terminal of `bai run`, and where an interrupted run says it stopped).

    `percent(phase, done, total)` maps a report to the step's overall percentage (None: not shown in the UI)."""

    def __init__(self, description: str, percent=lambda phase, done, total: 100.0 * done / total if total else None):
        self.description, self.percent = description, percent
        self.artifact_id, self.shown = None, 0.0

    def __call__(self, phase: str, done: int, total: int, detail: str = "") -> None:
        progress.report(phase, done, total, detail)
        percent = self.percent(phase, done, total)
        if percent is None:
            return
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(progress=percent, description=self.description)
            self.shown = percent
        elif percent - self.shown >= 2.0 or percent >= 100.0 > self.shown:
            update_progress_artifact(self.artifact_id, progress=percent)
            self.shown = percent


class RunLog(progress.Lines):
    """The run's story in its Prefect log, line for line what `bai run` prints on stderr off a terminal: each stage
    with what it produced, long phases every 10% (RL: step, reward, length, KL), what each stage found."""

    def __init__(self):
        super().__init__(_log_line)


def _log_line(text: str, warning: bool) -> None:
    try:
        logger = get_run_logger()  # the task's when a task runs, else the flow's
    except MissingContextError:
        return
    logger.log(logging.WARNING if warning else logging.INFO, text)


@contextmanager
def run_log() -> Iterator[None]:
    """The run's story goes to its log while the block runs (once: a subflow's lines go through its parent's)."""
    if progress.has_sink(RunLog):
        yield
        return
    sink = RunLog()
    progress.add_sink(sink)
    try:
        yield
    finally:
        progress.remove_sink(sink)


def stop_signals_seen() -> AbstractContextManager[None]:
    """bai_core.progress.stop_signals_seen, raising Prefect's own TerminationSignal: a run whose stop signal was lost
    (see there) then ends the way Prefect ends a cancelled run, not as a crash."""
    return progress.stop_signals_seen(lambda signum: TerminationSignal(signal=signum))


class _UserErrorsWithoutTraceback(logging.Filter):
    """A BaiError is a message for the user (a missing file, a bad key): the run's log in the UI shows that line,
    not a Python traceback. Other exceptions keep theirs: they are bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], BaiError):
            record.exc_info, record.exc_text = None, None
        return True


def install_log_filter() -> None:
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorsWithoutTraceback) for f in logger.filters):
            logger.addFilter(_UserErrorsWithoutTraceback())


def publish_report(config: PipelineConfig, kind: str, rows: list[dict], names: list[str], png: bytes,
                   title: str, note: str = "") -> dict:
    """A comparison's or a sweep's table: CSV / markdown / PNG files in the store under reports/<name>-<kind>/, a
    Prefect table artifact, and a markdown artifact with the plot. Returns the files' URIs."""
    store = open_store(config.storage)
    folder = layout.report_folder(config.name, kind)
    uris = report.write_report(store, folder, rows, names, png, title, note)
    table_md = tables.markdown(rows, names)
    key = re.sub(r"[^a-z0-9-]+", "-", f"{config.name}-{kind}".lower())
    create_table_artifact([{name: tables.cell(row.get(name)) for name in names} for row in rows], key=key,
                          description=title)
    create_markdown_artifact(f"# {title}\n\n{table_md}\n{note}\n\n"
                             f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})\n\n"
                             f"Files: `{store.uri(folder)}`", key=f"{key}-plot", description=f"{title}: plot")
    return uris
