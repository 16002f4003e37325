"""Merging a parent stage's adapter into full-precision weights, the start model of the child stage.

The merge happens in fp32 and is saved as a plain safetensors model; the child stage then loads that
in 8-bit. Merging into int8 weights instead would round the adapter's small updates away.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.atomic import atomic_directory
from harness.run.config import ModelConfig
from harness.core.errors import HarnessError
from harness.run.layout import MANIFEST_FILE
from harness.run.manifest import Manifest
from harness.models.loading import check_weight_files, load_causal_lm, load_tokenizer, weights_fingerprint


def _check_start_model(start_ref: str, adapter_dir: Path, model_cfg: ModelConfig) -> None:
    """Refuse to merge an adapter into other weights than those it was trained on."""
    if not (adapter_dir / MANIFEST_FILE).is_file():
        return
    manifest = Manifest.load(adapter_dir)
    expected = manifest.start_fingerprint or (manifest.base_fingerprint if manifest.parent is None else None)
    if expected is None:
        raise HarnessError(
            f"{adapter_dir}: this adapter was trained on the merged `{manifest.parent}` model, not on {start_ref}; "
            f"merge it into that model instead"
        )
    found = weights_fingerprint(start_ref, model_cfg.revision)
    if found != expected:
        raise HarnessError(
            f"{adapter_dir}: adapter was trained on weights {expected}, but {start_ref} has {found}; "
            "merge it into the model it was trained on"
        )


def merge_parent_adapter(base_ref: str, adapter_dir: Path, out_dir: Path, model_cfg: ModelConfig) -> Path:
    """Load `base_ref` in fp32, apply the adapter, merge it, and save model + tokenizer into `out_dir` atomically."""
    from peft import PeftModel

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise HarnessError(f"{adapter_dir}: no adapter_config.json; point at a checkpoint directory with a PEFT adapter")
    _check_start_model(base_ref, adapter_dir, model_cfg)
    check_weight_files(adapter_dir, model_cfg.allow_pickle, adapter=True)
    model = load_causal_lm(base_ref, model_cfg, quantization="none")
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    tokenizer = load_tokenizer(base_ref, model_cfg)
    with atomic_directory(out_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir
