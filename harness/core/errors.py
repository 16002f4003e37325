"""The one exception type for user errors.

Anything raised as `HarnessError` is the user's to fix (a bad config, a missing file, a package that
is not installed); the CLI prints it as a single line and exits non-zero. Every other exception is a
bug in harness and keeps its traceback.
"""


class HarnessError(Exception):
    """A problem the user can fix; the message names the file or key and what to do."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when empty): enough to name a fault in a one-line error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
