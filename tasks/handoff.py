"""Handing a stage to another work pool: run a deployment as a child of the current flow, wait for it, and take the
stage's result from the artifact store.

This is how GPU stages leave the CPU pool. A stage that needs a GPU (RLHF training, lm-eval scoring) is its own flow,
deployed on the GPU work pool (`bai-gpu`, see prefect.yaml and infra/); the pipeline, running on the CPU pool, hands it
over with `stage_on_pool`. The child is linked to the parent in the UI, runs on whichever GPU worker picks it up, and
publishes its result to the artifact store (S3 in a real set-up), where the parent reads it under the same key.
"""

from __future__ import annotations

import time

from prefect import task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from bai.tasks.stage import STAGE_TASK, finished
from bai_core.artifact_stage import ArtifactStage
from bai_core.errors import BaiError


@task(name="on-pool", task_run_name="{name}-on-{deployment}", **STAGE_TASK)
def stage_on_pool(name: str, deployment: str, stage: ArtifactStage, parameters: dict):
    """`stage`'s result: found published (Cached), or made by a run of `deployment` with `parameters` (Completed)."""
    if (result := stage.published()) is not None:
        return finished(result, "cached")
    run_on_pool(deployment, parameters)
    if (result := stage.published()) is None:
        raise BaiError(f"deployment {deployment}: finished, but {stage.store.uri(stage.folder())} holds no published "
                       f"{name} result (does the worker use the same storage?)")
    return finished(result, "built")


@task(name="on-pool", task_run_name="{name}-on-{deployment}-x{machines}", **STAGE_TASK)
def stage_on_machines(name: str, deployment: str, stage: ArtifactStage, parameters: dict, machines: int,
                      timeout_s: float = 6 * 3600, poll_s: float = 2.0):
    """`stage` on `machines` runs of `deployment` at once, one per machine rank (`settings.launch.machine_rank`):
    machine 0 leads and publishes, the others join it through the store (bai_core/rl/launch/machines.py)."""
    if (result := stage.published()) is not None:
        return finished(result, "cached")
    runs = []
    for rank in range(machines):
        settings = parameters["settings"]
        launch = {**settings["launch"], "machine_rank": rank}
        runs.append(run_deployment(name=deployment, parameters={**parameters, "settings": {**settings,
                                                                                          "launch": launch}},
                                   timeout=0, as_subflow=True))
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            states = [client.read_flow_run(run.id).state for run in runs]
            failed = [(rank, state) for rank, state in enumerate(states) if state and state.is_final()
                      and not state.is_completed()]
            if failed:
                rank, state = failed[0]
                raise BaiError(f"deployment {deployment}: machine {rank}'s run {runs[rank].name} ended "
                               f"{state.name}: {state.message}")
            if all(state and state.is_completed() for state in states):
                break
            if time.monotonic() > deadline:
                raise BaiError(f"deployment {deployment}: the {machines} machines' runs did not finish within "
                               f"{timeout_s:g} s (is a worker polling its work pool?)")
            time.sleep(poll_s)
    if (result := stage.published()) is None:
        raise BaiError(f"deployment {deployment}: finished, but {stage.store.uri(stage.folder())} holds no published "
                       f"{name} result (does the worker use the same storage?)")
    return finished(result, "built")


def run_on_pool(deployment: str, parameters: dict, timeout_s: float = 6 * 3600, poll_s: float = 2.0) -> FlowRun:
    """Run `deployment` ("flow-name/deployment-name") with `parameters`; return its finished, completed flow run."""
    child = run_deployment(name=deployment, parameters=parameters, timeout=timeout_s, poll_interval=poll_s,
                           as_subflow=True)
    # On timeout run_deployment returns the unfinished run instead of raising: say so.
    if not child.state or not child.state.is_final():
        raise BaiError(f"deployment {deployment}: run {child.name} did not finish within {timeout_s:g} s "
                       "(is a worker polling its work pool?)")
    if not child.state.is_completed():
        raise BaiError(f"deployment {deployment}: run {child.name} ended {child.state.name}: {child.state.message}")
    return child
