"""Strided-window perplexity: the window arithmetic by hand, and agreement with lm-eval on the embedded model."""

import importlib.util
import math
from pathlib import Path

import pytest

from harness.evals.perplexity import chunk_byte_counts, conditioning_token_id, section_nll, strided_windows

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "crosscheck_lm_eval.py"

# Written for this test.
TEXT = (
    "Worry tends to grow in the quiet hours. A person lies awake replaying a conversation, then a bill, "
    "then a symptom they read about, and each thought makes the next one louder. Counselors often suggest "
    "a short routine before bed: write the worries on paper, name one small step for tomorrow, and put the "
    "page away. The point is not to solve everything at night but to show the mind that the problem has a "
    "place to wait. Regular wake times, daylight in the morning and less caffeine after noon also help. "
    "When low mood, panic or sleeplessness lasts for weeks, or when someone thinks about harming themselves, "
    "talking to a doctor or a crisis line is the right next step, and nobody has to wait until it gets worse."
)


def scored_positions(windows):
    return [t for _, end, score_from in windows for t in range(score_from, end)]


def test_windows_by_hand():
    windows = strided_windows(10, 4, 2)
    assert windows == [(0, 5, 1), (2, 7, 5), (4, 9, 7), (5, 10, 9)]
    assert scored_positions(windows) == list(range(1, 10))
    contexts = [t - begin for begin, end, score_from in windows for t in range(score_from, end)]
    assert contexts == [1, 2, 3, 4, 3, 4, 3, 4, 4]


@pytest.mark.parametrize("n_tokens", [1, 2, 3, 7, 16, 17, 50])
@pytest.mark.parametrize(("max_length", "stride"), [(1, 1), (4, 1), (4, 3), (4, 4), (8, 5), (16, 16)])
def test_every_token_scored_once_with_bounded_context(n_tokens, max_length, stride):
    windows = strided_windows(n_tokens, max_length, stride)
    assert scored_positions(windows) == list(range(1, n_tokens))
    for begin, end, score_from in windows:
        assert end - 1 - begin <= max_length, "the model never reads more than max_length ids"
        assert begin < score_from < end
    for i, (begin, end, score_from) in enumerate(windows):
        for t in range(score_from, end):
            least = t if i == 0 else min(t, max_length - stride + 1)
            assert least <= t - begin <= max_length


def test_disjoint_windows_are_lm_eval_rolling_windows():
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    for n_text, max_length in [(1, 4), (4, 4), (5, 4), (13, 4), (100, 16)]:
        text_ids = list(range(100, 100 + n_text))
        ids = [0] + text_ids
        theirs = [
            make_disjoint_window(pair)
            for pair in get_rolling_token_windows(token_list=text_ids, prefix_token=0, max_seq_len=max_length, context_len=1)
        ]
        ours = strided_windows(len(ids), max_length, max_length)
        assert len(ours) == len(theirs)
        for (begin, end, score_from), (_, predicted) in zip(ours, theirs, strict=True):
            assert ids[score_from:end] == predicted
            assert (ids[begin:score_from] + predicted)[-(max_length + 1) :][:-1] == ids[begin : end - 1]


def test_stride_longer_than_window_is_refused():
    with pytest.raises(ValueError, match="without context"):
        strided_windows(10, 4, 5)


def test_chunk_byte_counts_follow_token_starts_and_sum_to_the_text():
    text = "ab cé dé fg"
    starts = [0, 2, 5, 8]
    assert chunk_byte_counts(text, starts, 2) == [len("ab cé".encode()), len(" dé fg".encode())]
    assert chunk_byte_counts(text, starts, 3) == [len("ab cé dé".encode()), len(" fg".encode())]
    assert chunk_byte_counts(text, starts, 10) == [len(text.encode())]


@pytest.fixture(scope="module")
def fp32_model(embedded_model_dir):
    from harness.run.config import ModelConfig
    from harness.models.loading import load_causal_lm

    return load_causal_lm(str(embedded_model_dir), ModelConfig(), quantization="none").eval()


@pytest.mark.model
def test_single_window_equals_the_model_loss(fp32_model, embedded_tokenizer):
    import torch

    text = "Sleep helps the brain recover."
    nll, n_tokens, n_bytes = section_nll(fp32_model, embedded_tokenizer, text, max_length=64, stride=32, batch_size=2)
    ids = [conditioning_token_id(embedded_tokenizer)] + embedded_tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        mean_loss = fp32_model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert n_tokens == len(ids) - 1
    assert n_bytes == len(text.encode())
    assert nll == pytest.approx(mean_loss * n_tokens, rel=1e-5)


@pytest.mark.model
def test_batching_does_not_change_the_score_and_context_lowers_it(fp32_model, embedded_tokenizer):
    one = section_nll(fp32_model, embedded_tokenizer, TEXT, max_length=32, stride=8, batch_size=1)
    many = section_nll(fp32_model, embedded_tokenizer, TEXT, max_length=32, stride=8, batch_size=7)
    assert one[1:] == many[1:]
    assert one[0] == pytest.approx(many[0], rel=1e-5)
    disjoint = section_nll(fp32_model, embedded_tokenizer, TEXT, max_length=32, stride=32, batch_size=4)
    assert disjoint[1] == one[1]
    assert one[0] < disjoint[0], "overlapping windows give every token more context than disjoint ones"


@pytest.mark.model
def test_bits_per_byte_agree_with_lm_eval_loglikelihood_rolling(fp32_model, embedded_tokenizer):
    spec = importlib.util.spec_from_file_location("crosscheck_lm_eval", SCRIPT)
    crosscheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(crosscheck)
    ours = crosscheck.ours_bits_per_byte(fp32_model, embedded_tokenizer, TEXT, max_length=48, batch_size=4)
    theirs = crosscheck.lm_eval_bits_per_byte(fp32_model, embedded_tokenizer, TEXT, max_length=48, batch_size=4)
    assert 0.1 < ours < 8
    assert crosscheck.relative_difference(ours, theirs) < 0.01
    assert math.isfinite(theirs)
