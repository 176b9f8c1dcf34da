#!/usr/bin/env bash
# The work pools prefect.yaml deploys to. Needs PREFECT_API_URL pointing at a server.
#   bai-cpu: process pool (fetch, merge), run on any machine with the project checked out.
#   bai-gpu: Kubernetes pool for GPU stages; needs `pip install prefect-kubernetes` where the worker runs.
set -euo pipefail
cd "$(dirname "$0")/.."
prefect=.venv/bin/prefect
$prefect work-pool inspect bai-cpu >/dev/null 2>&1 || $prefect work-pool create bai-cpu --type process
if [ "${WITH_GPU_POOL:-0}" = 1 ]; then
  $prefect work-pool inspect bai-gpu >/dev/null 2>&1 || \
    $prefect work-pool create bai-gpu --type kubernetes --base-job-template infra/k8s-gpu-base-job-template.json
fi
echo "start workers with: $prefect worker start --pool bai-cpu   (and --pool bai-gpu --type kubernetes)"
