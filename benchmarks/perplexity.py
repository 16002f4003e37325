"""Held-out perplexity: the harness's scorer vs lm-eval's `loglikelihood_rolling` on the same text, model and windows."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

from harness.evals.perplexity import section_nll


def _median_seconds(run: Callable[[], float], repeats: int) -> tuple[float, float]:
    """(result, median seconds) of `run` over `repeats` timed calls, after one untimed warm-up call."""
    seconds, result = [], run()
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    return result, statistics.median(seconds)


def compare_perplexity(model: Any, tokenizer: Any, text: str, *, max_length: int, batch_size: int, repeats: int) -> dict[str, Any]:
    """Bits per byte and tokens/s of both scorers in disjoint mode (stride == max_length), plus ours strided."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    n_bytes = len(text.encode("utf-8"))
    n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def ours(stride: int) -> float:
        nll, _, _ = section_nll(model, tokenizer, text, max_length=max_length, stride=stride, batch_size=batch_size)
        return nll / math.log(2) / n_bytes

    lm = HFLM(pretrained=model, tokenizer=tokenizer, max_length=max_length, device="cpu", batch_size=batch_size)

    def theirs() -> float:
        request = Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=0)
        (loglikelihood,) = lm.loglikelihood_rolling([request], disable_tqdm=True)
        return -loglikelihood / math.log(2) / n_bytes

    ours_bpb, ours_s = _median_seconds(lambda: ours(max_length), repeats)
    theirs_bpb, theirs_s = _median_seconds(theirs, repeats)
    strided_bpb, strided_s = _median_seconds(lambda: ours(max_length // 2), repeats)
    return {
        "tokens": n_tokens,
        "max_length": max_length,
        "harness_bits_per_byte": ours_bpb,
        "lm_eval_bits_per_byte": theirs_bpb,
        "relative_difference": abs(ours_bpb - theirs_bpb) / theirs_bpb,
        "harness_tokens_per_s": n_tokens / ours_s,
        "lm_eval_tokens_per_s": n_tokens / theirs_s,
        "speedup": theirs_s / ours_s,
        "strided_bits_per_byte": strided_bpb,
        "strided_tokens_per_s": n_tokens / strided_s,
    }
