"""Building the decoder's CPU kernels, and the greedy argmax they give: torch.argmax's choice on every row,
ties and NaNs included, and torch's own ops where the kernels cannot be built."""

from __future__ import annotations

import pytest
import torch

from harness.models import cpu_kernels
from harness.models.cpu_kernels import greedy_tokens


def test_kernels_that_cannot_be_built_are_none_and_say_so_in_one_line(monkeypatch):
    import torch.utils.cpp_extension

    from harness.core.console import console

    def no_compiler(**_):
        raise RuntimeError("Error building extension: c++: command not found\nmore lines")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    with console.capture() as captured:
        assert cpu_kernels.compiled_kernels.__wrapped__() is None
    said = " ".join(captured.get().split())
    assert "c++: command not found" in said and "more lines" not in said


@pytest.mark.usefixtures("cpu_kernels")
@pytest.mark.parametrize("vocabulary", [1, 7, 16, 33, 49152, 151936])
def test_greedy_tokens_are_torch_argmax_on_random_logits(vocabulary):
    logits = torch.randn(9, vocabulary, generator=torch.Generator().manual_seed(vocabulary))
    assert torch.equal(greedy_tokens(logits), logits.argmax(-1))


@pytest.mark.usefixtures("cpu_kernels")
@pytest.mark.parametrize("vocabulary", [5, 1000])
def test_greedy_tokens_pick_the_first_of_equal_largest_values_and_the_first_nan(vocabulary):
    logits = torch.randn(5, vocabulary, generator=torch.Generator().manual_seed(1))
    logits[0, -1] = 100.0
    logits[1, 3] = logits[1, vocabulary - 1] = float("nan")
    logits[2] = 1.0
    logits[3, 1] = logits[3, 4] = float("inf")
    logits[4] = float("-inf")
    assert torch.equal(greedy_tokens(logits), logits.argmax(-1))
    assert greedy_tokens(logits).tolist()[:4] == [vocabulary - 1, 3, 0, 1]


@pytest.mark.usefixtures("cpu_kernels")
def test_greedy_tokens_take_a_view_of_the_last_position():
    logits = torch.randn(4, 3, 50, generator=torch.Generator().manual_seed(2))
    assert torch.equal(greedy_tokens(logits[:, -1]), logits[:, -1].argmax(-1))


def test_without_the_kernels_greedy_tokens_is_torch_argmax(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "compiled_kernels", lambda: None)
    logits = torch.randn(3, 40)
    assert torch.equal(greedy_tokens(logits), logits.argmax(-1))
    monkeypatch.setattr(cpu_kernels, "compiled_kernels", lambda: pytest.fail("bf16 logits must not reach the kernel"))
    assert torch.equal(greedy_tokens(logits.bfloat16()), logits.bfloat16().argmax(-1))
