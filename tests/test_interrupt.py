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


def test_an_error_a_library_made_of_the_interrupt_leaves_as_the_interrupt():
    def library_call():
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            raise ValueError("could not determine the shape of object type 'torch.storage.UntypedStorage'") from None

    with pytest.raises(KeyboardInterrupt) as raised:
        with noticed_interrupts():
            library_call()
    assert isinstance(raised.value.__cause__, ValueError)
    with pytest.raises(ValueError):
        with noticed_interrupts():
            raise ValueError("a real failure stays itself")
