"""Prefect flows, installed as `bai.flows`, that compose the tasks in `tasks/` (pipeline, compare, sweep, and the
GPU pool's train and evaluate).

Called from Python with no PREFECT_API_URL, a flow runs against Prefect's temporary local API, which by default
gives up after 20 s: less than a new Prefect database needs to start on a busy 2-core machine. Allow it 180 s
(the same patience `bai run` has for the local server it starts), unless the user chose a value.

On a worker, stderr is a log, not a terminal: other libraries' progress bars are switched off there (the run's
story goes to its Prefect log instead).
"""

import os

from bai_core.progress import quiet_other_bars

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
quiet_other_bars()
