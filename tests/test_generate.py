"""Batched cached generation on the embedded model: same replies as one prompt at a time and as `model.generate`
at batch 16 (the generator before the in-place decoder), in input order, cached.

The model is loaded in fp32: greedy decoding must match exactly between a padded batch and single
prompts, and 8-bit matmuls are not bit-stable across batch shapes. The reference replies are computed
here, on the machine under test, with `model.generate`: replies recorded on one CPU could differ from
another CPU's in their last bits, and so in a greedy choice. A counting fake backend shows the cache
sits above the backend; the vLLM backend is checked where vLLM is importable (a CUDA GPU).
"""

import importlib.util
import json
from pathlib import Path

import pytest

from harness.data.conversations import chat_messages
from harness.data.run_data import load_run_data
from harness.evals.generate import Generation, Generator, TransformersBackend, build_generator, decode_reply
from harness.evals.safety import safety_conversations
from harness.models.checkpoints import ResolvedCheckpoint
from harness.run.config import ModelConfig, load_config
from harness.core.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]

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
    from harness.models.loading import load_causal_lm

    return load_causal_lm(str(embedded_model_dir), ModelConfig(), quantization="none").eval()


def make_generator(model, tokenizer, *, batch_size: int, cache_dir=None) -> Generator:
    return Generator(
        model, tokenizer, model_fingerprint="test-model", max_new_tokens=MAX_NEW_TOKENS, batch_size=batch_size,
        cache_dir=cache_dir,
    )


def count_generate_calls(monkeypatch, model) -> list[int]:
    """The size of every batch the transformers backend decodes."""
    calls: list[int] = []
    original = TransformersBackend.generate

    def counting(self, prompt_ids, **kwargs):
        calls.append(len(prompt_ids))
        return original(self, prompt_ids, **kwargs)

    monkeypatch.setattr(TransformersBackend, "generate", counting)
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


TODAYS_BATCH = 16
"""The batch the default config generated at before `batch_size: auto`."""


def eval_requests(config_name: str, overrides: list[str]) -> list[tuple[int, list]]:
    """(budget, conversations) of the similarity and safety evals of a shipped config, as the evals ask."""
    config = load_config(REPO / "configs" / config_name, overrides)
    data = load_run_data(config)
    system_prompt = config.data.counseling.system_prompt
    budgets = config.eval.generation
    return [
        (budgets.budget_for("similarity"), [chat_messages(c, system_prompt, with_response=False) for c in data.counseling.test]),
        (budgets.budget_for("safety"), safety_conversations(data.safety, system_prompt)),
    ]


def encoded_prompts(generator: Generator, tokenizer, conversations) -> list[list[int]]:
    return [tokenizer(generator.templated_prompt(c), add_special_tokens=False)["input_ids"] for c in conversations]


def generate_at_batch_16(model, tokenizer, conversations, budget: int) -> list[Generation]:
    """The replies the generator gave before the in-place decoder: `model.generate` with its own cache on
    batches of 16 prompts taken in length order."""
    from harness.evals.greedy_decoding import greedy_generate

    backend = TransformersBackend(model, tokenizer, decode=greedy_generate)
    generator = Generator(None, tokenizer, backend=backend, model_fingerprint="m", max_new_tokens=budget, batch_size=TODAYS_BATCH)
    return generator.generate(conversations)


def assert_same_replies_as_generate_at_batch_16(model, tokenizer, config_name: str, monkeypatch, overrides: list[str]) -> None:
    """Every generation eval's prompts decoded together, as the eval runner does (one batch, each prompt with its
    eval's budget), give each eval the replies `model.generate` gave it alone at batch 16."""
    requests = eval_requests(config_name, overrides)
    assert len({budget for budget, _ in requests}) == 2, "the evals must have different budgets for this test to mix them"
    calls = count_generate_calls(monkeypatch, model)
    together = Generator(model, tokenizer, model_fingerprint="m", max_new_tokens=requests[0][0], batch_size=None)
    together.prefetch(requests)
    assert calls == [sum(len(conversations) for _, conversations in requests)], "batch_size auto must make this one batch"
    served = [together.with_max_new_tokens(budget).generate(conversations) for budget, conversations in requests]
    assert len(calls) == 1, "every eval must be served what the one pass generated"
    monkeypatch.undo()
    for (budget, conversations), fast in zip(requests, served, strict=True):
        assert max(g.n_new_tokens for g in fast) <= budget
        reference = generate_at_batch_16(model, tokenizer, conversations, budget)
        different = [i for i, (a, b) in enumerate(zip(fast, reference, strict=True)) if a != b]
        assert not different, f"{len(different)} of {len(fast)} replies differ, first: {fast[different[0]]} vs {reference[different[0]]}"


def test_replies_equal_model_generate_at_batch_16_on_the_tiny_config_prompts(fp32_model, embedded_tokenizer, monkeypatch):
    assert_same_replies_as_generate_at_batch_16(
        fp32_model, embedded_tokenizer, "tiny.yaml", monkeypatch, ["eval.generation.max_new_tokens_by_eval={safety: 24}"]
    )


@pytest.mark.slow
def test_replies_equal_model_generate_at_batch_16_on_the_default_config_prompts(fp32_model, embedded_tokenizer, monkeypatch):
    """The default run's counseling and safety prompts at their budgets (96 and 256 tokens): about 10 minutes on 2 cores."""
    assert_same_replies_as_generate_at_batch_16(fp32_model, embedded_tokenizer, "default.yaml", monkeypatch, [])


def test_rows_leaving_at_their_stop_or_own_budget_leave_the_others_unchanged(fp32_model, embedded_tokenizer):
    """Per-row budgets and early stops make rows leave the batch mid-decode, so the in-place cache moves the
    rows still running; each reply must still be `model.generate`'s, cut at that row's budget."""
    from harness.evals.greedy_decoding import greedy_decode, greedy_generate

    short_reply = [{"role": "user", "content": "Reply with the single word yes and nothing else."}]
    conversations = [*CONVERSATIONS, short_reply, *eval_requests("tiny.yaml", [])[1][1]]
    generator = make_generator(fp32_model, embedded_tokenizer, batch_size=1)
    prompts = encoded_prompts(generator, embedded_tokenizer, conversations)
    budgets = [40 if conversation in (CONVERSATIONS[3], short_reply) else (3, 17, 9, 11, 6)[i % 5] for i, conversation in enumerate(conversations)]
    settings = {"stop_token_ids": generator.stop_token_ids, "pad_token_id": embedded_tokenizer.pad_token_id}
    decoded = greedy_decode(fp32_model, prompts, budgets, **settings)
    reference = greedy_generate(fp32_model, prompts, budgets, **settings)
    assert decoded == reference
    stopped = [reply[-1] in generator.stop_token_ids and len(reply) < budget for reply, budget in zip(decoded, budgets)]
    assert any(stopped) and not all(stopped), "some rows must stop early and some run to their budget"
    assert [len(reply) for reply, stop in zip(decoded, stopped) if not stop] == [b for b, stop in zip(budgets, stopped) if not stop]


def test_prompts_prefilled_in_chunks_of_their_own_width_decode_as_one_padded_batch(fp32_model, embedded_tokenizer, monkeypatch):
    """Chunks narrower than the longest prompt leave their keys right-aligned in the shared cache; with a small
    chunk size some chunks are padded and some not (equal lengths), and every reply must still be `generate`'s."""
    from harness.evals import greedy_decoding
    from harness.evals.greedy_decoding import greedy_decode, greedy_generate, prefill_chunks

    generator = make_generator(fp32_model, embedded_tokenizer, batch_size=1)
    conversations = [*CONVERSATIONS, *eval_requests("tiny.yaml", [])[1][1][:6]]
    prompts = encoded_prompts(generator, embedded_tokenizer, conversations)
    longest = conversations[max(range(len(prompts)), key=lambda row: len(prompts[row]))]
    conversations += [longest, longest]
    prompts = encoded_prompts(generator, embedded_tokenizer, conversations)
    monkeypatch.setattr(greedy_decoding, "PREFILL_CHUNK_TOKENS", 2 * max(len(ids) for ids in prompts))
    chunks = prefill_chunks([len(ids) for ids in prompts])
    widths = [{len(prompts[row]) for row in chunk} for chunk in chunks]
    assert len(chunks) > 2 and any(len(w) == 1 for w in widths) and any(len(w) > 1 for w in widths)
    settings = {"stop_token_ids": generator.stop_token_ids, "pad_token_id": embedded_tokenizer.pad_token_id}
    budgets = [10] * len(prompts)
    assert greedy_decode(fp32_model, prompts, budgets, **settings) == greedy_generate(fp32_model, prompts, budgets, **settings)


@pytest.mark.parametrize(("lengths", "limit"), [([5, 3, 9, 3, 7, 1], 12), ([40, 2, 2], 16), ([4] * 10, 1024)])
def test_prefill_chunks_take_rows_by_length_within_the_token_limit(lengths, limit, monkeypatch):
    from harness.evals import greedy_decoding

    monkeypatch.setattr(greedy_decoding, "PREFILL_CHUNK_TOKENS", limit)
    chunks = greedy_decoding.prefill_chunks(lengths)
    assert sorted(row for chunk in chunks for row in chunk) == list(range(len(lengths)))
    assert [lengths[row] for chunk in chunks for row in chunk] == sorted(lengths)
    assert all(len(chunk) == 1 or len(chunk) * max(lengths[row] for row in chunk) <= limit for chunk in chunks)
    assert all((len(a) + 1) * lengths[b[0]] > limit for a, b in zip(chunks, chunks[1:])), "each chunk takes rows while they fit"


def test_a_lora_adapter_decodes_as_model_generate_decodes_it(embedded_model_dir, embedded_tokenizer):
    """Evals of trained arms run through a `PeftModel`: the cache and the last-position logits must reach the model inside."""
    from peft import LoraConfig, get_peft_model

    from harness.evals.greedy_decoding import greedy_decode, greedy_generate
    from harness.models.loading import load_causal_lm

    base = load_causal_lm(str(embedded_model_dir), ModelConfig(), quantization="none")
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    generator = make_generator(model, embedded_tokenizer, batch_size=1)
    prompts = encoded_prompts(generator, embedded_tokenizer, CONVERSATIONS)
    settings = {"stop_token_ids": generator.stop_token_ids, "pad_token_id": embedded_tokenizer.pad_token_id}
    decoded = greedy_decode(model, prompts, [8] * len(prompts), **settings)
    assert decoded == greedy_generate(model, prompts, [8] * len(prompts), **settings)
    with model.disable_adapter():
        assert decoded != greedy_decode(model, prompts, [8] * len(prompts), **settings), "the adapter must change the replies"


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
    stop = make_generator(fp32_model, embedded_tokenizer, batch_size=1).stop_token_ids
    eos = embedded_tokenizer.eos_token_id
    words = embedded_tokenizer("Take a walk", add_special_tokens=False)["input_ids"]
    assert decode_reply(embedded_tokenizer, words + [eos, eos], stop) == Generation("Take a walk", len(words), False)
    assert decode_reply(embedded_tokenizer, words, stop) == Generation("Take a walk", len(words), True)
    assert decode_reply(embedded_tokenizer, [eos], stop) == Generation("", 0, False)


def test_sampling_defaults_in_the_model_generation_config_do_not_leak_in(fp32_model, embedded_tokenizer, monkeypatch):
    from transformers import GenerationConfig as SamplingDefaults

    greedy = make_generator(fp32_model, embedded_tokenizer, batch_size=1).generate(CONVERSATIONS[1:2])
    sampling = SamplingDefaults(do_sample=True, temperature=1.8, top_k=500, eos_token_id=embedded_tokenizer.eos_token_id)
    monkeypatch.setattr(fp32_model, "generation_config", sampling)
    for _ in range(2):
        assert make_generator(fp32_model, embedded_tokenizer, batch_size=1).generate(CONVERSATIONS[1:2]) == greedy


class CountingBackend:
    """A backend that answers with the last words of each prompt and records every batch it is given."""

    def __init__(self, tokenizer, name: str = "counting") -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.stop_token_ids = [tokenizer.eos_token_id]
        self.batches: list[list[list[int]]] = []
        self.budgets: list[list[int]] = []

    def identity(self) -> dict:
        return {"version": 1}

    def generate(self, prompt_ids, *, budgets):
        self.batches.append(prompt_ids)
        self.budgets.append(budgets)
        return [Generation(self.tokenizer.decode(ids[-3:]), min(len(ids), budget), False) for ids, budget in zip(prompt_ids, budgets)]


def test_the_disk_cache_sits_above_any_backend_and_its_key_names_the_backend(embedded_tokenizer, tmp_path):
    def generator(backend):
        return Generator(
            None, embedded_tokenizer, backend=backend, model_fingerprint="m", max_new_tokens=4, batch_size=2, cache_dir=tmp_path
        )

    first = CountingBackend(embedded_tokenizer)
    replies = generator(first).generate(CONVERSATIONS)
    encoded = [embedded_tokenizer(generator(first).templated_prompt(c), add_special_tokens=False)["input_ids"] for c in CONVERSATIONS]
    assert [len(batch) for batch in first.batches] == [2, 2]
    assert [ids for batch in first.batches for ids in batch] == sorted(encoded, key=len)
    assert replies == [Generation(embedded_tokenizer.decode(ids[-3:]), min(len(ids), 4), False) for ids in encoded]
    assert {json.loads(p.read_text())["backend"] for p in tmp_path.rglob("*.json")} == {"counting"}

    same = CountingBackend(embedded_tokenizer)
    assert generator(same).generate(CONVERSATIONS[::-1]) == replies[::-1]
    assert same.batches == [], "every reply must come from the cache"

    other = CountingBackend(embedded_tokenizer, name="other")
    generator(other).generate(CONVERSATIONS[:1])
    assert len(other.batches) == 1, "a different backend must not be served another backend's replies"


def test_generator_takes_a_model_or_a_backend_not_both(fp32_model, embedded_tokenizer):
    settings = {"model_fingerprint": "m", "max_new_tokens": 4, "batch_size": 2}
    with pytest.raises(ValueError, match="either"):
        Generator(fp32_model, embedded_tokenizer, backend=CountingBackend(embedded_tokenizer), **settings)
    with pytest.raises(ValueError, match="either"):
        Generator(None, embedded_tokenizer, **settings)
    assert isinstance(Generator(fp32_model, embedded_tokenizer, **settings).backend, TransformersBackend)


def eval_config(backend: str):
    return load_config(
        REPO / "configs" / "tiny.yaml",
        [f"eval.generation.backend={backend}", "eval.generation.max_new_tokens=5", "eval.generation.batch_size=3"],
    )


def base_checkpoint(model_dir) -> ResolvedCheckpoint:
    return ResolvedCheckpoint(
        name="base", arm="base", start_ref=str(model_dir), adapter_dir=None, base_model="smollm2", fingerprint="fp"
    )


def test_build_generator_defaults_to_transformers_with_the_configured_settings(fp32_model, embedded_tokenizer, embedded_model_dir):
    config = eval_config("transformers")
    generator = build_generator(config, base_checkpoint(embedded_model_dir), fp32_model, embedded_tokenizer, cache_dir=None)
    assert isinstance(generator.backend, TransformersBackend)
    assert (generator.max_new_tokens, generator.batch_size, generator.model_fingerprint) == (5, 3, "fp")
    with pytest.raises(HarnessError, match="eval.generation.backend"):
        load_config(REPO / "configs" / "tiny.yaml", ["eval.generation.backend=tgi"])


def test_generation_batch_size_does_not_change_the_eval_hash_and_auto_means_the_backend_decides(embedded_model_dir, fp32_model, embedded_tokenizer):
    from harness.evals.runner import eval_hash

    ckpt = base_checkpoint(embedded_model_dir)
    configs = [load_config(REPO / "configs" / "tiny.yaml", [f"eval.generation.batch_size={size}"]) for size in ("auto", 4)]
    data = load_run_data(configs[0])
    assert eval_hash(configs[0], ckpt, data, ["safety"], None) == eval_hash(configs[1], ckpt, data, ["safety"], None)
    longer = load_config(REPO / "configs" / "tiny.yaml", ["eval.generation.max_new_tokens=7"])
    assert eval_hash(longer, ckpt, data, ["safety"], None) != eval_hash(configs[0], ckpt, data, ["safety"], None)
    auto = build_generator(configs[0], ckpt, fp32_model, embedded_tokenizer, cache_dir=None)
    assert auto.batch_size is None
    assert 1 < auto.backend.rows_that_fit(100, 256) < auto.backend.rows_that_fit(100, 16)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_backend_without_the_package_is_a_user_error(embedded_tokenizer, embedded_model_dir):
    with pytest.raises(HarnessError) as err:
        build_generator(eval_config("vllm"), base_checkpoint(embedded_model_dir), None, embedded_tokenizer, cache_dir=None)
    assert str(err.value) == (
        "eval.generation.backend is vllm but the vllm package is not installed; pip install vllm (GPU) or use transformers"
    )


def test_vllm_backend_gives_greedy_capped_replies_through_the_cache(embedded_tokenizer, embedded_model_dir, tmp_path):
    pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    config = eval_config("vllm")
    generator = build_generator(config, base_checkpoint(embedded_model_dir), None, embedded_tokenizer, cache_dir=tmp_path)
    assert generator.backend.name == "vllm"
    replies = generator.generate(CONVERSATIONS)
    assert len(replies) == len(CONVERSATIONS) and all(r.n_new_tokens <= 5 for r in replies)
    assert any(r.text for r in replies)
    uncached = Generator(
        None, embedded_tokenizer, backend=generator.backend, model_fingerprint="fp", max_new_tokens=5, batch_size=3
    )
    assert uncached.generate(CONVERSATIONS) == replies, "greedy vLLM replies must be deterministic"


def fake_vllm(monkeypatch) -> dict:
    """A stand-in `vllm` package with the API the backend uses; records what the backend asked of it."""
    import importlib.machinery
    import sys
    import types

    seen: dict = {"generate": []}

    class LLM:
        def __init__(self, **kwargs):
            seen["llm"] = kwargs

        def generate(self, prompts, params, *, use_tqdm, lora_request):
            assert len(params) == len(prompts), "one SamplingParams per prompt: each carries its reply budget"
            seen["generate"].append((prompts, params, lora_request))
            eos = params[0].stop_token_ids[0]
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=p["prompt_token_ids"][-2:] + [eos, 7])]) for p in prompts]

    def record(**kwargs):
        return types.SimpleNamespace(**kwargs)

    modules = {
        "vllm": {"LLM": LLM, "SamplingParams": record, "__version__": "0.0-fake"},
        "vllm.inputs": {"TokensPrompt": dict},
        "vllm.lora": {},
        "vllm.lora.request": {"LoRARequest": lambda name, id_, path: (name, id_, path)},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        for key, value in attributes.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)
    return seen


def test_vllm_backend_gets_the_same_token_ids_greedy_settings_and_the_adapter(monkeypatch, embedded_tokenizer, embedded_model_dir, tmp_path):
    seen = fake_vllm(monkeypatch)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 4}))
    ckpt = ResolvedCheckpoint(
        name="domain", arm="domain", start_ref=str(embedded_model_dir), adapter_dir=adapter, base_model="smollm2", fingerprint="fp"
    )
    generator = build_generator(eval_config("vllm"), ckpt, None, embedded_tokenizer, cache_dir=tmp_path / "cache")
    assert (generator.backend.name, generator.batch_size) == ("vllm", 3)
    assert seen["llm"]["model"] == str(embedded_model_dir)
    assert (seen["llm"]["enable_lora"], seen["llm"]["max_lora_rank"], seen["llm"]["dtype"]) == (True, 8, "bfloat16")

    replies = generator.generate(CONVERSATIONS[:2])
    prompts, params, lora = seen["generate"][0]
    encoded = [embedded_tokenizer(generator.templated_prompt(c), add_special_tokens=False)["input_ids"] for c in CONVERSATIONS[:2]]
    assert sorted(p["prompt_token_ids"] for p in prompts) == sorted(encoded)
    assert {(p.temperature, p.max_tokens) for p in params} == {(0.0, 5)}
    assert embedded_tokenizer.eos_token_id in params[0].stop_token_ids
    assert lora == ("checkpoint", 1, str(adapter))
    stop = params[0].stop_token_ids
    assert replies == [decode_reply(embedded_tokenizer, ids[-2:] + [stop[0]], stop) for ids in encoded]
    assert all(not r.hit_token_cap and r.n_new_tokens == 2 for r in replies)
