"""Batched cached generation on the embedded model: same replies as one prompt at a time, in input order, cached.

The model is loaded in fp32: greedy decoding must match exactly between a padded batch and single
prompts, and 8-bit matmuls are not bit-stable across batch shapes.
"""

import json

import pytest

from evals.generate import Generation, Generator
from harness.config import ModelConfig
from harness.errors import HarnessError

pytestmark = pytest.mark.model

MAX_NEW_TOKENS = 12

CONVERSATIONS = [
    [{"role": "user", "content": "I have been feeling tired and low for two weeks and I do not know why. What could help?"}],
    [{"role": "user", "content": "Name one thing that helps with sleep."}],
    [
        {"role": "system", "content": "You are a kind assistant. Answer in one sentence."},
        {"role": "user", "content": "My friend seems withdrawn lately. How can I start a conversation with her about it?"},
    ],
    [{"role": "user", "content": "Hi"}],
]


@pytest.fixture(scope="module")
def fp32_model(embedded_model_dir):
    from harness.models import load_causal_lm

    return load_causal_lm(str(embedded_model_dir), ModelConfig(), load_in_8bit=False).eval()


def make_generator(model, tokenizer, *, batch_size: int, cache_dir=None) -> Generator:
    return Generator(
        model, tokenizer, model_fingerprint="test-model", max_new_tokens=MAX_NEW_TOKENS, batch_size=batch_size,
        cache_dir=cache_dir,
    )


def count_generate_calls(monkeypatch, model) -> list[int]:
    calls: list[int] = []
    original = model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting)
    return calls


def test_batched_replies_equal_one_prompt_at_a_time_in_input_order(fp32_model, embedded_tokenizer, monkeypatch):
    import torch

    batched = make_generator(fp32_model, embedded_tokenizer, batch_size=4)
    lengths = [len(embedded_tokenizer(batched.templated_prompt(c), add_special_tokens=False)["input_ids"]) for c in CONVERSATIONS]
    assert lengths != sorted(lengths), "the prompts must be out of length order for this test to check reordering"

    calls = count_generate_calls(monkeypatch, fp32_model)
    together = batched.generate(CONVERSATIONS)
    assert calls == [4]
    alone = [make_generator(fp32_model, embedded_tokenizer, batch_size=1).generate([c])[0] for c in CONVERSATIONS]
    assert together == alone
    assert all(isinstance(g, Generation) and g.text for g in together)
    assert len({g.text for g in together}) == len(CONVERSATIONS)

    ids = embedded_tokenizer(batched.templated_prompt(CONVERSATIONS[0]), add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        output = fp32_model.generate(**ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    new_tokens = output[0, ids["input_ids"].shape[1] :].tolist()
    assert together[0].text == embedded_tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
    ended = embedded_tokenizer.eos_token_id in new_tokens
    assert together[0].hit_token_cap == (not ended)
    assert together[0].n_new_tokens == (new_tokens.index(embedded_tokenizer.eos_token_id) if ended else MAX_NEW_TOKENS)


def test_second_call_is_served_from_the_disk_cache(fp32_model, embedded_tokenizer, tmp_path, monkeypatch):
    calls = count_generate_calls(monkeypatch, fp32_model)
    short = [CONVERSATIONS[1], CONVERSATIONS[3], CONVERSATIONS[0]]
    first = make_generator(fp32_model, embedded_tokenizer, batch_size=2, cache_dir=tmp_path).generate(short)
    assert calls == [2, 1]
    entries = sorted(tmp_path.rglob("*.json"))
    assert len(entries) == 3
    assert {json.loads(p.read_text())["text"] for p in entries} == {g.text for g in first}

    progress: list[int] = []
    again = make_generator(fp32_model, embedded_tokenizer, batch_size=2, cache_dir=tmp_path).generate(
        [short[2], short[0], short[2]], on_progress=progress.append
    )
    assert calls == [2, 1], "cached prompts must not be generated again"
    assert again == [first[2], first[0], first[2]]
    assert sum(progress) == 3


def test_cache_key_changes_with_everything_that_changes_the_reply(fp32_model, embedded_tokenizer, tmp_path):
    generator = make_generator(fp32_model, embedded_tokenizer, batch_size=2, cache_dir=tmp_path)
    prompt = generator.templated_prompt(CONVERSATIONS[1])
    settings = {"model_fingerprint": "test-model", "max_new_tokens": MAX_NEW_TOKENS, "batch_size": 2}
    other_model = Generator(fp32_model, embedded_tokenizer, **{**settings, "model_fingerprint": "other"})
    longer = Generator(fp32_model, embedded_tokenizer, **{**settings, "max_new_tokens": MAX_NEW_TOKENS + 1})
    bf16 = Generator(fp32_model, embedded_tokenizer, **settings, autocast_bf16=True)
    keys = {g.cache_key(prompt) for g in (generator, other_model, longer, bf16)} | {generator.cache_key(prompt + " ")}
    assert len(keys) == 5
    wider_batches = make_generator(fp32_model, embedded_tokenizer, batch_size=8)
    assert wider_batches.cache_key(prompt) == generator.cache_key(prompt)


def test_tokenizer_without_chat_template_is_a_user_error(fp32_model, embedded_tokenizer, monkeypatch):
    generator = make_generator(fp32_model, embedded_tokenizer, batch_size=1)
    monkeypatch.setattr(embedded_tokenizer, "chat_template", None)
    with pytest.raises(HarnessError, match="chat template"):
        generator.generate(CONVERSATIONS[:1])


def test_reply_ends_at_the_first_stop_token_and_only_a_missing_one_means_the_cap(fp32_model, embedded_tokenizer):
    generator = make_generator(fp32_model, embedded_tokenizer, batch_size=1)
    eos = embedded_tokenizer.eos_token_id
    words = embedded_tokenizer("Take a walk", add_special_tokens=False)["input_ids"]
    assert generator._decode(words + [eos, eos]) == Generation("Take a walk", len(words), False)
    assert generator._decode(words) == Generation("Take a walk", len(words), True)
    assert generator._decode([eos]) == Generation("", 0, False)


def test_sampling_defaults_in_the_model_generation_config_do_not_leak_in(fp32_model, embedded_tokenizer, monkeypatch):
    from transformers import GenerationConfig as SamplingDefaults

    greedy = make_generator(fp32_model, embedded_tokenizer, batch_size=1).generate(CONVERSATIONS[1:2])
    sampling = SamplingDefaults(do_sample=True, temperature=1.8, top_k=500, eos_token_id=embedded_tokenizer.eos_token_id)
    monkeypatch.setattr(fp32_model, "generation_config", sampling)
    for _ in range(2):
        assert make_generator(fp32_model, embedded_tokenizer, batch_size=1).generate(CONVERSATIONS[1:2]) == greedy
