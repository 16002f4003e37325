"""Model resolution and loading: the embedded model offline in 8-bit, and secure defaults."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.run.config import ModelConfig
from harness.core.errors import HarnessError
from harness.models.loading import check_weight_files, load_causal_lm, resolve_model, weights_fingerprint


def test_embedded_model_loads_in_8bit_and_answers_a_chat_prompt(embedded_model_dir, embedded_tokenizer):
    config = ModelConfig()
    assert resolve_model(config) == str(embedded_model_dir)
    model = load_causal_lm(str(embedded_model_dir), config, quantization="int8")
    linear_types = {type(m).__name__ for m in model.modules()}
    assert "Linear8bitLt" in linear_types
    messages = [{"role": "user", "content": "I feel nervous before exams. What can I do?"}]
    inputs = embedded_tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    reply = embedded_tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(reply.split()) >= 3


def test_8bit_base_uses_less_memory_than_fp32(embedded_model_dir):
    config = ModelConfig()
    int8 = load_causal_lm(str(embedded_model_dir), config, quantization="int8").get_memory_footprint()
    fp32 = load_causal_lm(str(embedded_model_dir), config, quantization="none").get_memory_footprint()
    assert int8 < 0.75 * fp32


def mapped_files() -> set[str]:
    with open("/proc/self/maps", encoding="utf-8") as maps:
        return {line.split(maxsplit=5)[5].strip() for line in maps if len(line.split(maxsplit=5)) == 6}


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps (Linux)")
@pytest.mark.parametrize("quantization", ["int8", "none"])
def test_loaded_model_does_not_keep_the_checkpoint_mapped(embedded_model_dir, quantization):
    import gc

    weights = {str(p.resolve()) for p in embedded_model_dir.glob("*.safetensors")}
    model = load_causal_lm(str(embedded_model_dir), ModelConfig(), quantization=quantization)
    gc.collect()
    assert not weights & mapped_files(), f"the {quantization} model still holds the checkpoint file mapped"
    embeddings = model.get_input_embeddings().weight
    assert embeddings.data_ptr() == model.get_output_embeddings().weight.data_ptr(), "tied weights stay tied"


def test_fp32_weights_survive_their_file_being_overwritten(embedded_model_dir, tmp_path, monkeypatch):
    """Weights still backed by the file would change with it (and be evicted and read back from disk under
    memory pressure); resident weights do not. Without the copy out of the mapping they do change."""
    import shutil

    from harness.models import loading

    def load_then_overwrite(directory: Path) -> tuple[torch.Tensor, torch.Tensor]:
        model = load_causal_lm(str(directory), ModelConfig(), quantization="none")
        before = torch.stack([p.detach().double().abs().sum() for p in model.parameters()])
        weights = directory / "model.safetensors"
        with open(weights, "r+b") as handle:
            handle.seek(4096)
            handle.write(bytes(weights.stat().st_size - 8192))
        return before, torch.stack([p.detach().double().abs().sum() for p in model.parameters()])

    for name in ("resident", "mapped"):
        shutil.copytree(embedded_model_dir, tmp_path / name)
    before, after = load_then_overwrite(tmp_path / "resident")
    assert torch.equal(before, after)
    monkeypatch.setattr(loading, "_copy_out_of_checkpoint_mapping", lambda model: None)
    before, after = load_then_overwrite(tmp_path / "mapped")
    assert not torch.equal(before, after), "the check must see weights that stay mapped"


def test_unknown_alias_is_a_one_line_error():
    with pytest.raises(HarnessError, match="smollm9.*fix `model.name`"):
        resolve_model(ModelConfig(name="smollm9"))


def _tiny_dir(tmp_path, weights_name):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / weights_name).write_bytes(b"\x00" * 16)
    return tmp_path


def test_pickle_weights_are_refused_unless_allowed(tmp_path):
    directory = _tiny_dir(tmp_path, "pytorch_model.bin")
    with pytest.raises(HarnessError, match="pickle files.*allow_pickle"):
        check_weight_files(directory, allow_pickle=False)
    check_weight_files(directory, allow_pickle=True)
    with pytest.raises(HarnessError, match="pickle"):
        resolve_model(ModelConfig(name=str(directory)))


def test_safetensors_directory_is_accepted(tmp_path):
    directory = _tiny_dir(tmp_path, "model.safetensors")
    assert resolve_model(ModelConfig(name=str(directory))) == str(directory.resolve())


def test_loading_passes_secure_defaults(monkeypatch):
    seen = {}

    def fake_from_pretrained(ref, **kwargs):
        seen.update(kwargs)
        raise OSError("stop here")

    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    with pytest.raises(HarnessError, match="org/model"):
        load_causal_lm("org/model", ModelConfig(name="org/model"), quantization="none")
    assert seen["trust_remote_code"] is False
    assert seen["use_safetensors"] is True


def test_fingerprint_follows_weight_bytes(tmp_path):
    directory = _tiny_dir(tmp_path, "model.safetensors")
    before = weights_fingerprint(str(directory))
    (directory / "model.safetensors").write_bytes(b"\x01" * 16)
    assert weights_fingerprint(str(directory)) != before
    assert weights_fingerprint("org/model", "v1") != weights_fingerprint("org/model", "v2")


def test_processes_converting_the_embedded_model_at_once_convert_it_once(tmp_path):
    convert = "import sys; from harness.models.loading import convert_embedded; from pathlib import Path; print(convert_embedded('smollm2-135m-instruct', Path(sys.argv[1])))"
    started = [
        subprocess.Popen([sys.executable, "-c", convert, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600)[0] for process in started]
    assert [process.returncode for process in started] == [0, 0], outputs
    assert sum(output.count("Cached smollm2-135m-instruct") for output in outputs) == 1, outputs
    (converted,) = [path for path in tmp_path.iterdir() if not path.name.startswith(".")]
    assert (converted / "config.json").is_file() and (converted / "model.safetensors").is_file()
    assert not [path for path in tmp_path.iterdir() if path.name.endswith((".partial", ".old"))]
