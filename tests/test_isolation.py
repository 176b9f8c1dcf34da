"""The suite's own guard (tests/conftest.py: isolated_test): what a test leaves running is killed, its process group
too, and what was running before the test (the session's services) is left alone."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from tests.services import child_pids, kill_children_except

# A child that starts a grandchild, then both sleep: what a `bai run` that starts workers looks like.
PARENT = ("import subprocess, sys, time; "
          "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)")


@pytest.mark.parametrize("own_session", [True, False], ids=["own-session", "our-group"])
def test_a_child_left_running_is_killed_with_its_children_and_a_service_is_kept(own_session):
    service = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        before = child_pids()
        child = subprocess.Popen([sys.executable, "-c", PARENT], start_new_session=own_session)
        deadline = time.monotonic() + 30
        while not (grandchildren := psutil.Process(child.pid).children()):
            assert time.monotonic() < deadline, "the child never started its own child"
            time.sleep(0.05)
        killed = kill_children_except(before)
        assert set(killed) == {child.pid, grandchildren[0].pid}
        assert child.poll() is not None
        _, alive = psutil.wait_procs(grandchildren, timeout=10)
        assert alive == []
        assert service.poll() is None  # started before: not this test's to kill
    finally:
        service.kill()
        service.wait(timeout=10)
