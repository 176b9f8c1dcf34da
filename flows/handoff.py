"""Handing a stage to another work pool: run a deployment as a child of the current flow and wait for it.

This is how GPU stages leave the CPU pool. A stage that needs a GPU (RLHF training, lm-eval scoring) is its own flow,
deployed on the GPU work pool (`bai-gpu`, see prefect.yaml and infra/); the pipeline, running on the CPU pool, calls
`run_on_pool("bai-train/gpu", {...})`. The child is linked to the parent in the UI, runs on whichever GPU worker picks
it up, and hands its results back through the artifact store (S3 in a real set-up), not through process memory.
"""

from __future__ import annotations

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from bai_core.errors import BaiError


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
