"""A Ctrl-C swallowed where it landed (in a finalizer, say) is raised again at the next check."""

from __future__ import annotations

import os
import signal

import pytest

from harness.core.interrupt import noticed_interrupts, raise_if_interrupted


def test_a_swallowed_interrupt_is_raised_at_the_next_check():
    before = signal.getsignal(signal.SIGINT)
    with noticed_interrupts():
        raise_if_interrupted()
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass  # what a finalizer's "Exception ignored" amounts to
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    assert signal.getsignal(signal.SIGINT) is before
    raise_if_interrupted()
