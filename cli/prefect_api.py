"""Which Prefect API `bai run` talks to, and the local server it starts once and keeps when none is configured.

Order: PREFECT_API_URL (environment or Prefect profile) if set; else a Prefect server already answering on
127.0.0.1:$BAI_PREFECT_PORT (default 4200, where `infra/prefect-server.sh` puts one); else bai starts one there (or on
a free port) in the background, records it in $PREFECT_HOME/bai-server.json and keeps it for later runs
(`bai server stop` ends it).

Why not Prefect's own fallback, a temporary API inside every process: it costs ~20 s per run on this kind of machine
(an all-cached rerun is ~1 s against a running server), it gives up after 20 s, which a new database needs more than,
and several processes at once share its SQLite file. A kept server pays the start once, serves concurrent runs
through one process, and leaves a UI to look at afterwards.

No Prefect import here: starting and probing a server is a subprocess and an HTTP GET.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bai_core.errors import BaiError
from bai_core.io.atomic import pid_alive
from bai_core.locks import exclusive

DEFAULT_PORT = 4200
# A new database is created and migrated on first start: ~50 s on a busy 2-core machine here (Prefect's own limit
# for its temporary API is 20 s). 180 s leaves room for a slow laptop and still fails in minutes, not never.
STARTUP_TIMEOUT_S = 180.0
STATE_FILE = "bai-server.json"


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def answers(api_url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile (`prefect config set ...`)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import get_current_settings  # the profile needs Prefect's own settings loader

    return get_current_settings().api.url or None


def check_configured(api_url: str) -> None:
    if not answers(api_url, timeout=10):
        raise BaiError(
            f"the Prefect API at {api_url} does not answer; start it (infra/prefect-server.sh) or unset "
            "PREFECT_API_URL to let bai start a local server"
        )


def api_url_for_run(announce=None) -> str:
    """The API `bai run` should use: the configured one (checked), a local one already running, or a new one."""
    url = configured_api_url()
    if url:
        check_configured(url)
        return url
    return ensure_local_server(announce)


def local_port() -> int:
    raw = os.environ.get("BAI_PREFECT_PORT", str(DEFAULT_PORT))
    if not raw.isdigit():
        raise BaiError(f"BAI_PREFECT_PORT={raw!r}: not a port number")
    return int(raw)


def _startup_timeout() -> float:
    raw = os.environ.get("BAI_PREFECT_STARTUP_TIMEOUT", str(STARTUP_TIMEOUT_S))
    try:
        return float(raw)
    except ValueError:
        raise BaiError(f"BAI_PREFECT_STARTUP_TIMEOUT={raw!r}: not a number of seconds") from None


def recorded_server() -> dict | None:
    """The server bai started for this PREFECT_HOME, if it still runs and answers."""
    try:
        record = json.loads((prefect_home() / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if _alive(record.get("pid", -1)) and answers(record["api_url"]):
        return record
    return None


def ensure_local_server(announce=None) -> str:
    home = prefect_home()
    # One process at a time decides whether to start it: two runs started together share one server.
    with exclusive(f"prefect-server:{home}", folder=home):
        if (record := recorded_server()) is not None:
            return record["api_url"]
        port = local_port()
        default_url = f"http://127.0.0.1:{port}/api"
        if answers(default_url):
            return default_url  # somebody's server (infra/prefect-server.sh, another PREFECT_HOME): share it
        if not _port_free(port):
            port = _free_port()
        return _start(home, port, announce)


def _start(home: Path, port: int, announce) -> str:
    api_url = f"http://127.0.0.1:{port}/api"
    timeout = _startup_timeout()
    log_path = home / "bai-server.log"
    if announce:
        announce(f"starting a local Prefect server on http://127.0.0.1:{port} (kept for later runs; "
                 f"`bai server stop` ends it; log: {log_path})")
    # The UI asks its page's server for the API's address: give the real port (its default is 4200 whatever --port).
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port), "PREFECT_UI_API_URL": api_url}
    env.pop("PREFECT_API_URL", None)
    with open(log_path, "ab") as log:
        # Its own session: a Ctrl-C or SIGTERM meant for this run must not stop the server that other runs share.
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port), "--analytics-off"], env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_it_answers(proc, api_url, timeout, log_path)
    except BaseException:  # too slow, exited, or this run was stopped meanwhile: no half-started server stays
        _terminate(proc.pid)
        raise
    record = {"api_url": api_url, "pid": proc.pid, "port": port, "log": str(log_path)}
    temporary = home / f".{STATE_FILE}.tmp"
    temporary.write_text(json.dumps(record) + "\n")
    os.replace(temporary, home / STATE_FILE)
    return api_url


def _wait_until_it_answers(proc: subprocess.Popen, api_url: str, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BaiError(f"the local Prefect server exited at start-up (code {proc.returncode}; see {log_path}); "
                           "start one with infra/prefect-server.sh and set PREFECT_API_URL=http://127.0.0.1:4200/api")
        if answers(api_url, timeout=2):
            return
        time.sleep(0.5)
    raise BaiError(
        f"the local Prefect server did not answer within {timeout:g} s (log: {log_path}); start one with "
        "infra/prefect-server.sh and set PREFECT_API_URL=http://127.0.0.1:4200/api, or allow it longer with "
        "BAI_PREFECT_STARTUP_TIMEOUT=<seconds>"
    )


def stop_recorded_server() -> str:
    """Stop the server bai started for this PREFECT_HOME; says what it did."""
    path = prefect_home() / STATE_FILE
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return "no local Prefect server started by bai for this PREFECT_HOME"
    if _alive(record["pid"]):
        _terminate(record["pid"])
    path.unlink(missing_ok=True)
    return f"stopped the local Prefect server at {record['api_url']} (pid {record['pid']})"


def _terminate(pid: int, grace_s: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)  # the server and the uvicorn process it runs
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:  # our own child that already exited: reap it
            return False
    except ChildProcessError:
        pass
    return pid_alive(pid)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
