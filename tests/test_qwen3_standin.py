"""configs/qwen3-1.7b.yaml on an offline Qwen3 stand-in: schema, 8-bit loading, LoRA targets, chat format, run-all.

The stand-in (tests/qwen3_standin.py) is a `Qwen3ForCausalLM` with random weights and tiny dimensions
plus a tokenizer and chat template built here, so the Qwen3 code path runs in CI without the hub. The
recipe config is loaded as users load it and shrunk only through `--set` overrides (the CLI's mechanism).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.run.config import load_config
from tests.qwen3_standin import EMPTY_THINK, SAMPLE_DATA, build_qwen3_standin

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "qwen3-1.7b.yaml"
RECIPE_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
ARMS = ["domain", "instruct", "instruct-only"]


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory) -> Path:
    return build_qwen3_standin(tmp_path_factory.mktemp("qwen3-standin"))


@pytest.fixture(scope="module")
def overrides(standin_dir) -> list[str]:
    """Everything that makes the recipe run in seconds; the recipe's model loading, LoRA and schedules stay."""
    return [
        f"model.name={standin_dir}",
        "data.domain.max_length=32",
        "data.domain.stride=32",
        f"data.counseling.path={SAMPLE_DATA / 'counseling_conversations.jsonl'}",
        "data.counseling.max_train_examples=4",
        "data.counseling.max_test_examples=2",
        f"data.safety.sources=[{{path: {SAMPLE_DATA / 'safety_prompts.jsonl'}, format: harness, limit: 1}}]",
        "training.domain.max_steps=2",
        "training.domain.grad_accum=1",
        "training.instruct.max_steps=2",
        "training.instruct.grad_accum=1",
        "training.instruct.max_length=256",
        "eval.perplexity.max_length=32",
        "eval.perplexity.stride=16",
        "eval.generation.max_new_tokens=8",
        "eval.generation.max_new_tokens_by_eval.safety=8",
        "eval.limit=2",
        "eval.bootstrap_resamples=100",
    ]


@pytest.fixture(scope="module")
def config(overrides):
    return load_config(RECIPE, overrides)


def test_recipe_config_keeps_its_recipe_under_the_overrides(config, standin_dir):
    recipe = load_config(RECIPE)
    assert recipe.model.name == "Qwen/Qwen3-1.7B" and config.model.name == str(standin_dir)
    assert config.model.load_in_8bit and not config.model.trust_remote_code
    assert config.lora == recipe.lora and config.lora.target_modules == RECIPE_TARGETS
    assert (config.lora.r, config.lora.alpha) == (8, 16)
    for stage in ("domain", "instruct"):
        ours, theirs = getattr(config.training, stage), getattr(recipe.training, stage)
        assert (ours.learning_rate, ours.batch_size, ours.epochs, ours.lr_scheduler) == (
            theirs.learning_rate, theirs.batch_size, theirs.epochs, theirs.lr_scheduler,
        )
        assert ours.max_steps == 2 and theirs.max_steps is None and theirs.grad_accum == 8
    assert recipe.data.domain.max_length == 768 and config.data.domain.max_length == 32


def test_standin_loads_in_8bit_with_lora_on_the_recipe_targets(config, standin_dir):
    import torch

    from harness.models.loading import load_causal_lm, load_tokenizer, resolve_model
    from harness.stages.lora_model import check_target_modules, linear_layer_names, load_lora_model

    ref = resolve_model(config.model)
    tokenizer = load_tokenizer(ref, config.model)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>"), "Qwen3's own pad token is kept"

    model = load_causal_lm(ref, config.model)
    assert model.config.model_type == "qwen3"
    assert set(RECIPE_TARGETS) | {"gate_proj", "up_proj", "down_proj"} <= set(linear_layer_names(model))
    int8_attention = [n for n, p in model.named_parameters() if p.dtype == torch.int8 and n.split(".")[-2] in RECIPE_TARGETS]
    assert len(int8_attention) == 4 * model.config.num_hidden_layers
    check_target_modules(model, config.lora)

    peft_model = load_lora_model(config, ref)
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in peft_model.named_parameters() if ".lora_A" in n}
    assert adapted == set(RECIPE_TARGETS)
    assert all(".lora_" in n for n, p in peft_model.named_parameters() if p.requires_grad)


def test_chat_format_has_the_empty_think_block_and_trains_only_the_reply(config, standin_dir):
    from harness.evals.generate import Generator, decode_reply
    from harness.data.chat import render_chat
    from harness.data.conversations import Conversation, chat_messages
    from harness.models.loading import load_causal_lm, load_tokenizer
    from harness.stages.batching import IGNORE_INDEX
    from harness.stages.sft_examples import prompt_and_completion, tokenize_conversation

    tokenizer = load_tokenizer(str(standin_dir), config.model)
    system = config.data.counseling.system_prompt
    conv = Conversation("c1", "q1", "I cannot sleep before exams.", "Try a fixed wind-down routine and talk to someone you trust.")
    prompt, completion = prompt_and_completion(tokenizer, conv, system)
    assert prompt.endswith(f"<|im_start|>assistant\n{EMPTY_THINK}")
    assert completion == f"{conv.response}<|im_end|>"
    assert render_chat(tokenizer, chat_messages(conv, system, with_response=True), add_generation_prompt=False) == (
        f"{prompt}{completion}\n"
    ), "SFT must train on exactly the text generation is prompted with"

    example = tokenize_conversation(tokenizer, conv, system, max_length=256)
    trained = [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained) == completion
    think_ids = set(tokenizer.convert_tokens_to_ids(["<think>", "</think>"]))
    assert think_ids <= set(example["input_ids"]) and not think_ids & set(trained)

    model = load_causal_lm(str(standin_dir), config.model, quantization="none")
    generator = Generator(model, tokenizer, model_fingerprint="standin", max_new_tokens=8, batch_size=2)
    assert generator.templated_prompt(chat_messages(conv, system, with_response=False)) == prompt
    end_of_turn, end_of_text = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert generator.stop_token_ids == sorted([end_of_turn, end_of_text])
    thought = tokenizer("<think>\nThey are anxious.\n</think>\n\nYou are not alone.", add_special_tokens=False)["input_ids"]
    assert decode_reply(tokenizer, thought + [end_of_text], generator.stop_token_ids).text == "You are not alone."
    unclosed = tokenizer("<think>\nStill thinking", add_special_tokens=False)["input_ids"]
    assert decode_reply(tokenizer, unclosed, generator.stop_token_ids).text == ""
    replies = generator.generate([chat_messages(conv, system, with_response=False)] * 2)
    assert replies[0] == replies[1] and replies[0].n_new_tokens <= 8


def test_run_all_on_the_standin(standin_dir, overrides, tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    run_dir = tmp_path / "run"
    args = ["run-all", "--config", str(RECIPE), "--output", str(run_dir)]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output

    for arm in ARMS:
        adapter = json.loads((run_dir / "checkpoints" / arm / "adapter_config.json").read_text())
        assert sorted(adapter["target_modules"]) == sorted(RECIPE_TARGETS) and (adapter["r"], adapter["lora_alpha"]) == (8, 16)
        assert json.loads((run_dir / "checkpoints" / arm / "manifest.json").read_text())["load_in_8bit"] is True
    merged = next((run_dir / "merged").glob("domain-*"))
    assert json.loads((merged / "config.json").read_text())["model_type"] == "qwen3"
    instruct = json.loads((run_dir / "checkpoints" / "instruct" / "adapter_config.json").read_text())
    assert Path(instruct["base_model_name_or_path"]) == merged, "instruct trains on the merged domain model"
    assert Path(json.loads((run_dir / "checkpoints" / "instruct-only" / "adapter_config.json").read_text())["base_model_name_or_path"]) == standin_dir

    for name in ["base", *ARMS]:
        assert (run_dir / "results" / f"{name}.json").is_file()
        for eval_name in ("similarity", "safety"):
            lines = (run_dir / "samples" / name / f"{eval_name}.jsonl").read_text(encoding="utf-8").splitlines()
            assert lines and all("<think>" not in json.loads(line)["output"] for line in lines)
    assert (run_dir / "report.html").is_file()
