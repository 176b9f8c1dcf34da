#!/usr/bin/env bash
# A real Prefect server on 127.0.0.1:4200 (UI at http://127.0.0.1:4200), state under $PREFECT_HOME (default .prefect/).
# Then, in every shell that runs flows or workers: export PREFECT_API_URL=http://127.0.0.1:4200/api
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
exec .venv/bin/prefect server start --host 127.0.0.1 --port "${PREFECT_PORT:-4200}" --analytics-off
