"""The first hour with `bai run`: the Prefect API it finds or starts, runs started together, and stopping mid-stage.

Every run here is a real `bai run` process against a real Prefect server: the session's (PREFECT_API_URL) or the
local one bai starts itself when none is configured.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bai.cli.prefect_api import answers
from bai_core.fingerprint import fingerprint_folder
from tests.services import free_port
from tests.test_pipeline_cli import write_config

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
BAI = [sys.executable, "-m", "bai.cli"]


def local_api_env(tmp_path: Path, **extra: str) -> dict:
    """No Prefect API configured: a new user's shell, with a fresh Prefect home and a port of its own."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "BAI_PREFECT_PORT": str(free_port()),
           **extra}
    env.pop("PREFECT_API_URL")
    return env


def states(summary: dict) -> dict[str, str]:
    return {row["stage"]: row["state"] for row in summary["stages"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def temporaries(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if ".bai-tmp-" in p.name]


def test_a_prefect_server_that_does_not_start_in_time_is_one_line(family, tmp_path):
    env = local_api_env(tmp_path, BAI_PREFECT_STARTUP_TIMEOUT="1")  # a new database needs far longer than 1 s
    config = write_config(tmp_path / "c.yaml", family, str(tmp_path / "store"))
    proc = subprocess.run([*BAI, "run", str(config)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("bai: error: the local Prefect server did not answer within 1 s"), proc.stderr
    assert "infra/prefect-server.sh" in last and "PREFECT_API_URL" in last
    time.sleep(1)
    assert not answers(f"http://127.0.0.1:{env['BAI_PREFECT_PORT']}/api")  # the half-started server was stopped
    assert not (tmp_path / "store" / "merges").exists()


@pytest.mark.parametrize("api", ["configured server", "local server started by bai"])
def test_runs_started_together_merge_each_artifact_once(api, medium_family, tmp_path):
    from bai_core.merge import merge_two_stages
    from bai_core.merge.config import MergeJob

    env = dict(os.environ) if api == "configured server" else local_api_env(tmp_path)
    session_log = Path(os.environ["PREFECT_HOME"]).parent / "prefect-server.log"
    session_log_before = session_log.stat().st_size if session_log.is_file() else 0  # earlier tests' lines are not ours
    config = write_config(tmp_path / "c.yaml", medium_family, str(tmp_path / "store"), name="together")
    commands = [[*BAI, "run", str(config), "--json"]] * 2 + [[*BAI, "run", str(config), "--json",
                                                              "--set", "merge.alpha=0.2"]]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for c in commands]
    results = [proc.communicate(timeout=600) for proc in procs]
    try:
        for proc, (_, stderr) in zip(procs, results):
            assert proc.returncode == 0, stderr
        same_a, same_b, other_alpha = (json.loads(stdout) for stdout, _ in results)
        assert same_a["outputs"] == same_b["outputs"]
        assert same_a["outputs"]["sft"] == other_alpha["outputs"]["sft"]
        # Each artifact was merged by exactly one run; the others waited for it and adopted it, or hit the cache.
        stage1 = [states(s)["merge-stage1"] for s in (same_a, same_b, other_alpha)]
        assert stage1.count("Completed") == 1 and set(stage1) <= {"Completed", "Adopted", "Cached"}, stage1
        stage2 = [states(s)["merge-stage2"] for s in (same_a, same_b)]
        assert stage2.count("Completed") == 1 and set(stage2) <= {"Completed", "Adopted", "Cached"}, stage2
        assert states(other_alpha)["merge-stage2"] == "Completed"

        # Intact, and the same bits as one merge run alone, outside Prefect.
        single = merge_two_stages(MergeJob(**dict(medium_family), output=tmp_path / "single-bai",
                                           stage1_output=tmp_path / "single-sft", alpha=0.5))
        for stage, alone in (("sft", single.stage1_output), ("bai", single.output)):
            folder = Path(same_a["outputs"][stage].removeprefix("file://"))
            marker = json.loads((folder / "_bai_complete.json").read_text())
            assert fingerprint_folder(folder) == marker["fingerprint"]
            assert sha256(folder / "model.safetensors") == sha256(alone / "model.safetensors")
        assert temporaries(tmp_path / "store") == []

        logs = "".join(stderr for _, stderr in results)
        if api == "configured server":
            with session_log.open() as log:
                log.seek(session_log_before)
                logs += log.read()
        else:
            logs += (tmp_path / "prefect-home" / "bai-server.log").read_text()
            starts = sum("starting a local Prefect server" in stderr for _, stderr in results)
            assert starts == 1  # the runs shared one server
        assert "database is locked" not in logs
    finally:
        if api == "local server started by bai":
            stop = subprocess.run([*BAI, "server", "stop"], capture_output=True, text=True, env=env, timeout=60)
            assert stop.stdout.startswith("stopped the local Prefect server"), stop.stdout + stop.stderr
            assert not answers(f"http://127.0.0.1:{env['BAI_PREFECT_PORT']}/api")


def test_a_second_run_finds_the_kept_local_server(family, tmp_path):
    env = local_api_env(tmp_path)
    config = write_config(tmp_path / "c.yaml", family, str(tmp_path / "store"))
    try:
        first = subprocess.run([*BAI, "run", str(config), "--json"], capture_output=True, text=True, env=env,
                               timeout=300)
        assert first.returncode == 0, first.stderr
        assert "starting a local Prefect server" in first.stderr
        again = subprocess.run([*BAI, "run", str(config), "--json"], capture_output=True, text=True, env=env,
                               timeout=300)
        assert again.returncode == 0, again.stderr
        assert "starting a local Prefect server" not in again.stderr
        assert states(json.loads(again.stdout))["merge-stage2"] == "Cached"
        status = subprocess.run([*BAI, "server", "status"], capture_output=True, text=True, env=env, timeout=60)
        assert status.returncode == 0 and "started by bai" in status.stdout
        # Its UI (same address) talks to this server, not to Prefect's default port.
        with urllib.request.urlopen(f"http://127.0.0.1:{env['BAI_PREFECT_PORT']}/ui-settings", timeout=10) as reply:
            assert json.loads(reply.read())["api_url"] == f"http://127.0.0.1:{env['BAI_PREFECT_PORT']}/api"
    finally:
        subprocess.run([*BAI, "server", "stop"], capture_output=True, env=env, timeout=60)


def read_until(stream, text: str, timeout: float) -> list[str]:
    """The child's lines up to one holding `text`; never waits past `timeout` for a line that does not come (a
    thread reads, so a silent child cannot block the test). The stream is left for the caller to read on."""
    lines: queue.Queue = queue.Queue()
    seen = []

    def reader() -> None:
        for line in iter(stream.readline, ""):
            lines.put(line.rstrip("\n"))
            if text in line:
                return  # stop here: what follows is the caller's
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} not seen in time; stderr so far: {seen}")


def test_sigterm_while_training_the_demo_family_stops_within_10_s(tmp_path):
    store, cache = tmp_path / "store", tmp_path / "cache"
    env = {**os.environ, "BAI_CACHE_DIR": str(cache)}  # a machine that has never built the family
    config = tmp_path / "c.yaml"  # seed 1: no size ships it, so it is built here
    models = {r: f"demo://test/{r}@1" for r in ("pretrained", "instruct", "reasoning")}
    config.write_text(json.dumps({"name": "stopped", "storage": {"uri": str(store)}, "models": models}))
    proc = subprocess.Popen([*BAI, "run", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)
    read_until(proc.stderr, "demo-family-test started", timeout=120)
    time.sleep(3)  # into the build (preparing data or training)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=30)[1].strip().splitlines()
    elapsed = time.monotonic() - sent
    assert proc.returncode == 143
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"
    assert rest[-1].startswith("bai: stopped by SIGTERM during demo-family-test"), rest
    assert "nothing partial was published" in rest[-1] and "Traceback" not in "\n".join(rest)
    assert not list(store.rglob("_bai_complete.json"))
    assert temporaries(store, cache) == []


def test_a_stop_signal_whose_exception_was_lost_still_stops_the_next_progress_report():
    """A handler's exception raised inside a finalizer (__del__) is printed and dropped by Python; the run must stop
    anyway, at its next progress report, from the signal number the interpreter wrote to the wakeup fd."""
    from bai_core import progress
    from bai_core.errors import Stopped

    class Terminated(BaseException):  # what the block says a stop is (in a Prefect run: Prefect's own exception)
        pass

    swallowed = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: swallowed.append(signum))  # the lost exception
    try:
        for stop, raised in ((Stopped, Stopped), (lambda signum: Terminated(signum), Terminated)):
            swallowed.clear()
            with progress.stop_signals_seen(stop):
                progress.report("train", 1, 10)  # nothing arrived: no stop
                os.kill(os.getpid(), signal.SIGTERM)
                deadline = time.monotonic() + 5
                while not swallowed and time.monotonic() < deadline:
                    time.sleep(0.01)
                with pytest.raises(raised) as stopped:
                    progress.report("train", 2, 10)
                assert stopped.value.args == (signal.SIGTERM,) and swallowed == [signal.SIGTERM]
            progress.report("train", 3, 10)  # outside the block nothing is checked
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("demo_store")  # the test family is already built in this machine's cache
@pytest.mark.parametrize("sig,stage", [(signal.SIGINT, "train"), (signal.SIGTERM, "evaluate-bai")],
                         ids=["SIGINT-train", "SIGTERM-evaluate"])
def test_a_stop_signal_during_train_or_evaluate_exits_with_its_code_and_publishes_nothing(tmp_path, sig, stage):
    """Ctrl-C (SIGINT, exit 130) in the RL loop, SIGTERM (143, what Kubernetes and Prefect's cancel send) while
    lm-eval scores: each stops within 10 s, says where, and leaves no marker, actor or score behind."""
    store = tmp_path / "store"
    config = {"name": "stopped", "storage": {"uri": str(store)},
              "models": {r: f"demo://test/{r}" for r in ("pretrained", "instruct", "reasoning")}}
    if stage == "train":
        config["train"] = {"reward": [{"model": "demo://test/reward"}], "prompts": "demo://test/rl", "steps": 500,
                           "batch_size": 8, "generations": 4, "max_completion_length": 48, "save_every": 1000}
    else:
        config["evaluate"] = {"models": ["bai"]}
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(config))
    # SIGINT as at a terminal: a test run started in the background (`cmd &`, as CI may) inherits SIGINT ignored,
    # and Python then keeps ignoring it, as a background job should.
    proc = subprocess.Popen([*BAI, "run", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # into the work: RL steps (500 of them: minutes), or lm-eval's requests (64 answers: seconds)
        read_until(proc.stderr, "train started" if stage == "train" else "scoring bai on", timeout=180)
        time.sleep(4 if stage == "train" else 0.5)
        sent = time.monotonic()
        proc.send_signal(sig)
        rest = proc.communicate(timeout=30)[1].strip().splitlines()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    elapsed = time.monotonic() - sent
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], rest[-5:]
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"
    assert rest[-1].startswith(f"bai: stopped by {sig.name} during {stage}"), rest
    assert "; nothing partial was published" in rest[-1]
    assert "Traceback" not in "\n".join(rest)
    finished = {p.parent.relative_to(store).parts[0] for p in store.rglob("_bai_complete.json")}
    assert finished == {"families", "merges"}  # the family and merges before it; nothing of the stopped stage
    assert temporaries(store) == []
