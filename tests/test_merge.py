"""Merging a parent adapter: fp32 weights whose logits equal the adapter-wrapped model's."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.run.config import ModelConfig
from harness.core.errors import HarnessError
from harness.run.manifest import Manifest
from harness.stages.merge import merge_parent_adapter

PROBE = [1, 504, 3458, 314, 253, 1789, 28, 339, 2316, 216]


def logits_of(model, input_ids: list[int]):
    import torch

    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([input_ids])).logits


@pytest.fixture(scope="module")
def perturbed_adapter(embedded_model_dir, tmp_path_factory):
    """An adapter with non-zero lora_B (a fresh one is the identity) saved next to its PEFT model's logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir), dtype=torch.float32)
    base_logits = logits_of(base, PROBE)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    directory = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(directory, safe_serialization=True)
    return directory, logits_of(model, PROBE), base_logits


@pytest.mark.model
def test_merged_model_reproduces_the_adapter_in_fp32(embedded_model_dir, perturbed_adapter, tmp_path):
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    adapter_dir, peft_logits, base_logits = perturbed_adapter
    out_dir = merge_parent_adapter(str(embedded_model_dir), adapter_dir, tmp_path / "merged", ModelConfig(quantization="int8"))

    assert out_dir == tmp_path / "merged"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out_dir.iterdir()}
    assert not any(p.name.startswith("adapter_") for p in out_dir.iterdir())
    with safe_open(str(out_dir / "model.safetensors"), framework="pt") as weights:
        dtypes = {weights.get_tensor(key).dtype for key in weights.keys()}
        assert not any("lora" in key for key in weights.keys())
    assert dtypes == {torch.float32}

    merged = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32)
    merged_logits = logits_of(merged, PROBE)
    assert torch.allclose(merged_logits, peft_logits, atol=1e-4)
    assert (merged_logits - base_logits).abs().max().item() > 1e-2


def _write_manifest(directory: Path, **overrides) -> None:
    fields = {
        "arm": "domain",
        "stage": "domain",
        "parent": None,
        "base_model": "smollm2-135m-instruct",
        "base_fingerprint": "0000000000000000",
        "config_hash": "x",
        "seed": 0,
        **overrides,
    }
    Manifest.model_validate(fields).save(directory)


@pytest.mark.model
def test_adapter_trained_on_another_base_is_refused(embedded_model_dir, tmp_path):
    adapter_dir = tmp_path / "adapter"
    adapter_dir.mkdir()
    (adapter_dir / "adapter_config.json").write_text("{}")
    _write_manifest(adapter_dir)
    with pytest.raises(HarnessError, match="trained on weights 0000000000000000"):
        merge_parent_adapter(str(embedded_model_dir), adapter_dir, tmp_path / "merged", ModelConfig())
    assert not (tmp_path / "merged").exists()


def test_adapter_trained_on_a_merged_parent_is_refused(tmp_path):
    adapter_dir = tmp_path / "adapter"
    adapter_dir.mkdir()
    (adapter_dir / "adapter_config.json").write_text("{}")
    _write_manifest(adapter_dir, arm="instruct", stage="instruct", parent="domain")
    with pytest.raises(HarnessError, match="trained on the merged `domain` model"):
        merge_parent_adapter("unused-base", adapter_dir, tmp_path / "merged", ModelConfig())


def test_directory_without_adapter_is_refused(tmp_path):
    with pytest.raises(HarnessError, match="no adapter_config.json"):
        merge_parent_adapter("unused-base", tmp_path, tmp_path / "merged", ModelConfig())
