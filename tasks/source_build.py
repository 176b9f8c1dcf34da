"""A plug-in's source build as a pipeline stage (the demo family: the one shipped with bai, verified file by file, or
one trained once per size and seed), published into the artifact store, with a progress artifact while it builds and
its report as a table artifact. Cached like the merges: the plug-in runs it through `run_stage`, trusted while the
store holds it intact."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact

from bai.tasks.artifacts import ProgressArtifact
from bai.tasks.stage import STAGE_TASK, finished
from bai_core import plugins, progress
from bai_core.storage import StorageConfig, open_store


@task(name="source-build", task_run_name="{stage}", **STAGE_TASK)
def build_source(stage: str, scheme: str, arguments: dict, storage: StorageConfig):
    """What the scheme builds from `arguments`, in the store: found there, or built once; its report as a table
    artifact. (`stage` names the task run: demo-family-demo.)"""
    plugin = plugins.checkpoint_scheme(scheme)
    on_progress = ProgressArtifact(plugin.build_title(arguments), plugin.build_percent)
    built, how = plugin.run_build(arguments, open_store(storage), on_progress)
    progress.note(built.note)
    create_table_artifact(built.table, key=built.table_key, description=built.table_description)
    return finished({**built.result, "shown": built.shown}, how)
