#!/usr/bin/env bash
# Register the deployments in prefect.yaml. Workers run the code from this checkout (BAI_PROJECT_DIR).
# The CPU ones (pipeline, sweep, compare) go on the bai-cpu pool; the GPU ones (bai-train/gpu, bai-evaluate/gpu)
# only when a bai-gpu pool exists (infra/setup-pools.sh with WITH_GPU_POOL=1): without it they are skipped, said so.
set -euo pipefail
cd "$(dirname "$0")/.."
prefect=.venv/bin/prefect
names=(bai-pipeline/demo bai-sweep/alpha-sweep bai-compare/compare)
if $prefect work-pool inspect bai-gpu >/dev/null 2>&1; then
    names+=(bai-train/gpu bai-evaluate/gpu)
else
    echo "deploy.sh: no bai-gpu work pool, so bai-train/gpu and bai-evaluate/gpu are not registered" \
         "(WITH_GPU_POOL=1 infra/setup-pools.sh creates it); train and evaluate run inside the pipeline's run"
fi
args=()
for name in "${names[@]}"; do args+=(--name "$name"); done
BAI_PROJECT_DIR="$PWD" exec $prefect --no-prompt deploy "${args[@]}"
