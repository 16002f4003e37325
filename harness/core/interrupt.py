"""Ctrl-C that cannot be lost while a run is in progress.

Python raises KeyboardInterrupt in whatever code runs when the signal lands; if that is a finalizer
(the garbage collection that follows loading or freeing a model runs many), the exception is printed
as "ignored" and the run goes on. If it lands in a library that turns a failed call into its own error
(torch reports an interrupted safetensors read as "could not determine the shape"), the run fails with
that error instead. While `noticed_interrupts()` is active the signal is also recorded:
`raise_if_interrupted()`, called between training steps, arms and evals, raises it again there, and an
error that escapes after the signal leaves as the interrupt it stands for. The record is process-wide
because a signal is.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_received = threading.Event()


def _on_sigint(signum: int, frame: object) -> None:
    _received.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def noticed_interrupts() -> Iterator[None]:
    """Record Ctrl-C for the duration (main thread only; elsewhere the default handling stays)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    except Exception as error:
        if _received.is_set():
            raise KeyboardInterrupt from error
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        _received.clear()


def raise_if_interrupted() -> None:
    if _received.is_set():
        raise KeyboardInterrupt
