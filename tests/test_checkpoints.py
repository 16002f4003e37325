"""Checkpoint lineage faults: missing or incomplete parents, a foreign base, and an interrupted stage."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.models.checkpoints import resolve_arm
from harness.run.config import load_config
from harness.run.layout import RunLayout
from harness.core.errors import HarnessError
from harness.run.manifest import Manifest
from harness.models.loading import resolve_model, weights_fingerprint

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from harness.cli import app; app()", *args]


@pytest.fixture()
def tiny_config():
    return load_config(REPO / "configs" / "tiny.yaml")


def _manifest(config, base_model: str, fingerprint: str) -> Manifest:
    return Manifest(arm="domain", stage="domain", parent=None, base_model=base_model,
                    base_fingerprint=fingerprint, config_hash="x", seed=0)


def test_missing_parent_checkpoint_is_a_one_line_error(tmp_path):
    result = subprocess.run(cli("train", "instruct", "--config", "configs/tiny.yaml", "--output", str(tmp_path),
                                "--set", "arms=[domain, instruct]"), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "domain" in result.stderr and "does not exist" in result.stderr


def test_incomplete_parent_checkpoint_is_refused(tmp_path, tiny_config, embedded_model_dir):
    (RunLayout(tmp_path).checkpoint("domain")).mkdir(parents=True)
    with pytest.raises(HarnessError, match="incomplete"):
        resolve_arm(tiny_config, tmp_path, "domain")


def test_checkpoint_of_another_base_model_is_refused(tmp_path, tiny_config, embedded_model_dir):
    directory = RunLayout(tmp_path).checkpoint("domain")
    directory.mkdir(parents=True)
    _manifest(tiny_config, "Qwen/Qwen3-1.7B", "0" * 16).save(directory)
    with pytest.raises(HarnessError, match="trained on base 'Qwen/Qwen3-1.7B'"):
        resolve_arm(tiny_config, tmp_path, "domain")
    same_name_other_weights = _manifest(tiny_config, tiny_config.model.name, "f" * 16)
    same_name_other_weights.save(directory)
    with pytest.raises(HarnessError, match="retrain with --fresh"):
        resolve_arm(tiny_config, tmp_path, "domain")
    real = weights_fingerprint(resolve_model(tiny_config.model))
    _manifest(tiny_config, tiny_config.model.name, real).save(directory)
    assert resolve_arm(tiny_config, tmp_path, "domain").adapter_dir == directory


def test_training_on_a_parent_of_another_base_model_is_refused(tmp_path, tiny_config):
    directory = RunLayout(tmp_path).checkpoint("domain")
    directory.mkdir(parents=True)
    _manifest(tiny_config, tiny_config.model.name, "f" * 16).save(directory)
    result = subprocess.run(cli("train", "instruct", "--config", "configs/tiny.yaml", "--output", str(tmp_path),
                                "--set", "arms=[domain, instruct]"), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "trained on base" in result.stderr and "retrain with --fresh" in result.stderr
    assert not (tmp_path / "merged").exists(), "the foreign parent was merged into this base"


def test_sigint_keeps_finished_stages_and_the_rerun_resumes(tmp_path, embedded_model_dir):
    run_dir = tmp_path / "run"
    args = cli("run-all", "--config", "configs/tiny.yaml", "--output", str(run_dir))
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    domain_manifest = run_dir / "checkpoints" / "domain" / "manifest.json"
    deadline = time.monotonic() + 600
    while not domain_manifest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert domain_manifest.exists(), "the domain stage did not finish"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr[-2000:]
    assert "re-run the same command to resume" in stderr
    checkpoints = run_dir / "checkpoints"
    complete = {p.parent.name for p in checkpoints.glob("*/manifest.json")}
    assert {"base", "domain"} <= complete
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(".")], "a partial directory was left behind"
    rerun = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "domain: checkpoint is up to date, skipping" in rerun.stderr
    assert {"domain", "instruct", "instruct-only"} <= {p.parent.name for p in checkpoints.glob("*/manifest.json")}
    shutil.rmtree(run_dir)


def test_adapter_fingerprint_ignores_the_order_peft_writes_target_modules_in(tmp_path):
    """PEFT saves `target_modules` from a set: two processes saving the same adapter list it in different orders."""
    import json

    from harness.models.checkpoints import adapter_fingerprint

    fingerprints = []
    for order in (["q_proj", "v_proj"], ["v_proj", "q_proj"]):
        directory = tmp_path / "-".join(order)
        directory.mkdir()
        (directory / "adapter_config.json").write_text(json.dumps({"r": 4, "target_modules": order}))
        (directory / "adapter_model.safetensors").write_bytes(b"same weights")
        fingerprints.append(adapter_fingerprint(directory))
    assert fingerprints[0] == fingerprints[1]
    (directory / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": ["q_proj", "v_proj"]}))
    assert adapter_fingerprint(directory) != fingerprints[0]


def test_a_checkpoint_fingerprinted_the_older_way_is_still_trusted(tmp_path):
    """Manifests written before target_modules were sorted for hashing hold the files' raw hash."""
    import json

    from harness.models.checkpoints import adapter_fingerprint, read_checkpoint
    from harness.run.manifest import Manifest

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4, "target_modules": ["v_proj", "q_proj"]}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    legacy = adapter_fingerprint(tmp_path, canonical=False)
    assert legacy != adapter_fingerprint(tmp_path)
    Manifest(arm="domain", stage="domain", parent=None, base_model="m", base_fingerprint="b", config_hash="c", seed=0,
             adapter_fingerprint=legacy).save(tmp_path)
    manifest, damage = read_checkpoint(tmp_path)
    assert damage is None and manifest.adapter_fingerprint == legacy
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights, truncated")
    assert read_checkpoint(tmp_path)[0] is None
