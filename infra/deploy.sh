#!/usr/bin/env bash
# Register every deployment in prefect.yaml. Workers run the code from this checkout (BAI_PROJECT_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
BAI_PROJECT_DIR="$PWD" exec .venv/bin/prefect --no-prompt deploy --all
