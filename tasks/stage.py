"""How a stage task reports what `bai_core.artifact_stage.run_stage` decided, and when Prefect retries it.

The library decides whether a stage builds: its marker in the artifact store is the cache record. A stage task runs
every time (a published stage costs a marker read), and finishes in a state that says how its result was had:

    Cached     published intact before this run asked (an earlier run, here or on another machine)
    Adopted    a run beside this one was building it; this one waited and took its result
    Completed  built by this run
    Rebuilt    built by this run again: what was published under its key was damaged (the log says how)

Prefect keeps no cache record of its own (NO_CACHE), so there is nothing to refresh when an artifact is deleted or
altered: the store says so, and the stage builds again.
"""

from __future__ import annotations

from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State
from pydantic import BaseModel

from bai_core.artifact_stage import How
from bai_core.errors import BaiError

STATE_NAMES = {"cached": "Cached", "adopted": "Adopted", "built": "Completed", "rebuilt": "Rebuilt"}
# Every stage task's options: the store is the cache, so Prefect neither caches nor persists results.
STAGE_TASK = {"cache_policy": NO_CACHE, "persist_result": False}


def finished(result: BaseModel | dict, how: How, damaged: str | None = None) -> State:
    """The task's final state: its result (as JSON), named for how it was had; a rebuilt one's message says what
    was damaged (the UI shows it beside the state)."""
    data = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    return Completed(data=data, name=STATE_NAMES[how], message=f"rebuilt: {damaged}" if how == "rebuilt" else None)


def not_a_user_error(task, task_run, state) -> bool:
    """Retry transient failures (network, S3 hiccups), not mistakes in the input that a retry cannot fix."""
    try:
        state.result()
    except BaiError:
        return False
    except Exception:
        return True
    return False
