"""The one exception type for problems a user can fix (bad input, bad config, missing files).

The CLI prints these as a single line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class BaiError(Exception):
    """A user-facing error: its message names the file, tensor or key at fault."""
