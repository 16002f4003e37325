"""`model.quantization`: int8, 4-bit NF4 or none for the frozen base, as a setting (and a grid axis)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.run.config import ModelConfig, load_config
from harness.run.manifest import Manifest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


@pytest.mark.parametrize(
    "given, expected",
    [({}, "int8"), ({"load_in_8bit": True}, "int8"), ({"load_in_8bit": False}, "none"),
     ({"quantization": "nf4", "load_in_8bit": False}, "nf4"), ({"quantization": "none"}, "none")],
)
def test_the_older_load_in_8bit_setting_is_read_as_a_quantization(given, expected):
    assert ModelConfig.model_validate(given).quantization == expected


def test_a_bad_quantization_names_the_key_and_the_choices():
    with pytest.raises(HarnessError, match="model.quantization"):
        load_config(TINY, ["model.quantization=int4"])
    with pytest.raises(HarnessError, match="write model.quantization: int8, nf4 or none instead"):
        load_config(TINY, ["model.load_in_8bit=sometimes"])


def test_quantization_is_a_grid_axis():
    config = load_config(TINY, ["arms=[domain]", "grid={model.quantization: [int8, nf4]}"])
    assert [config.arm_config(a.name).model.quantization for a in config.lineage.arms] == ["int8", "nf4"]


def test_a_4bit_base_trains_its_adapters(tmp_path, embedded_model_dir):
    """The stage measures held-out loss before training; on a 4-bit base that must not freeze the adapters."""
    from safetensors.torch import load_file

    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "harness", "train", "domain", "--config", str(TINY), "--output", str(run_dir),
         "--set", "model.quantization=nf4", "--set", "training.domain.max_steps=3"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = Manifest.load(run_dir / "checkpoints" / "domain")
    assert manifest.quantization == "nf4" and not manifest.load_in_8bit
    weights = load_file(str(run_dir / "checkpoints" / "domain" / "adapter_model.safetensors"))
    assert max(tensor.abs().max().item() for name, tensor in weights.items() if "lora_B" in name) > 0
    assert manifest.eval_loss[-1].loss < manifest.eval_loss[0].loss
