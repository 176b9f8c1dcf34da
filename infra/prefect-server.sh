#!/usr/bin/env bash
# A real Prefect server in the foreground on 127.0.0.1:$BAI_PREFECT_PORT (default 4200; UI at that address), its
# state under $PREFECT_HOME (default ~/.prefect): the port and home `bai run` looks at, so a run finds this server.
# Then, in every shell that runs flows or workers: export PREFECT_API_URL=http://127.0.0.1:4200/api
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_HOME="${PREFECT_HOME:-$HOME/.prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
exec .venv/bin/prefect server start --host 127.0.0.1 --port "${BAI_PREFECT_PORT:-4200}" --analytics-off
