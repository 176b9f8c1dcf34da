"""The one exception type for problems a user can fix (bad input, bad config, missing files).

The CLI prints these as a single line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class BaiError(Exception):
    """A user-facing error: its message names the file, tensor or key at fault."""


class Stopped(BaseException):
    """A stop signal (SIGTERM, SIGINT), raised where the main thread is (like KeyboardInterrupt for Ctrl-C), so
    `finally` blocks and temporary folders are cleaned up on the way out. `signum` says which."""

    def __init__(self, signum: int = 15):
        super().__init__(signum)
        self.signum = signum
