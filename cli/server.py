"""`bai server start|status|stop`: the local Prefect server that `bai run` starts when no API is configured."""

from __future__ import annotations

import sys

from bai.cli import prefect_api


def add_parser(sub) -> None:
    p = sub.add_parser(
        "server",
        help="the local Prefect server bai starts for `bai run` (start, status, stop)",
        description="Without PREFECT_API_URL, `bai run` uses a Prefect server on 127.0.0.1 (port $BAI_PREFECT_PORT, "
        "default 4200), starting one in the background if none answers, and keeps it for later runs.",
    )
    p.add_argument("action", choices=["start", "status", "stop"])
    p.set_defaults(func=run)


def run(args) -> int:
    if args.action == "stop":
        print(prefect_api.stop_recorded_server())
        return 0
    if args.action == "start":
        url = prefect_api.ensure_local_server(announce=lambda message: print(f"bai: {message}", file=sys.stderr))
        print(f"Prefect API at {url} (UI at {url.removesuffix('/api')})")
        return 0
    record = prefect_api.recorded_server()
    if record is not None:
        print(f"running: {record['api_url']} (pid {record['pid']}, started by bai; log {record['log']})")
        return 0
    url = f"http://127.0.0.1:{prefect_api.local_port()}/api"
    if prefect_api.answers(url):
        print(f"running: {url} (not started by bai)")
        return 0
    print("not running; `bai run` or `bai server start` starts one")
    return 3
