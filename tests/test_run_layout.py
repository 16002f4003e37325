"""The run directory's one layout, the schema version every saved JSON carries, and work done once per run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import pipeline
from harness.core.errors import HarnessError
from harness.data.run_data import load_run_data
from harness.models import loading
from harness.run.config import load_config
from harness.reports.trackers import TrackingRecord
from harness.run.grid_results import GridResult
from harness.run.layout import RunLayout
from harness.run.manifest import CheckpointOrigin, LossPoint, Manifest, TrainingRecord, stage_manifest
from harness.run.record import RunRecord
from harness.run.results import EvalResult
from harness.run.schema import VersionedRecord

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "run_fixture"
TINY = REPO / "configs" / "tiny.yaml"


def _grid() -> GridResult:
    return GridResult(points=[], seeds=[0], cells=[], main_effects=[], presentation={}, higher_is_better={})


SAVED: dict[str, tuple[type[VersionedRecord], Callable[[], VersionedRecord], Callable[[RunLayout], Path]]] = {
    "results": (EvalResult, lambda: EvalResult.load(RunLayout(FIXTURE).result("domain")), lambda layout: layout.result("domain")),
    "manifest": (Manifest, lambda: Manifest.load(RunLayout(FIXTURE).checkpoint("domain")), lambda layout: layout.manifest("domain")),
    "run.json": (RunRecord, lambda: RunRecord.load(RunLayout(FIXTURE).run_json), lambda layout: layout.run_json),
    "grid.json": (GridResult, _grid, lambda layout: layout.grid_json),
    "tracking.json": (TrackingRecord, TrackingRecord, lambda layout: layout.tracking_json),
}
"""Each saved JSON: its model, a record of it, and where a run keeps it."""


def _save(record: VersionedRecord, path: Path) -> None:
    """Save to `path`; a manifest is addressed by its checkpoint directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record.save(path.parent if isinstance(record, Manifest) else path)


def _load(model: type[VersionedRecord], path: Path) -> VersionedRecord:
    return model.load(path.parent if model is Manifest else path)


@pytest.mark.parametrize("kind", SAVED)
def test_every_saved_json_carries_its_schema_version(tmp_path, kind):
    model, make, where = SAVED[kind]
    path = where(RunLayout(tmp_path))
    _save(make(), path)
    assert json.loads(path.read_text())["schema_version"] == 1
    assert _load(model, path).schema_version == 1


def test_the_data_inspection_in_run_json_carries_its_own_version(tmp_path):
    path = RunLayout(tmp_path).run_json
    RunRecord.load(RunLayout(FIXTURE).run_json).save(path)
    assert json.loads(path.read_text())["data_inspect"]["schema_version"] == 1


@pytest.mark.parametrize("kind", SAVED)
def test_an_unknown_schema_version_is_one_line_naming_file_version_and_fix(tmp_path, kind):
    model, make, where = SAVED[kind]
    path = where(RunLayout(tmp_path))
    _save(make(), path)
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(HarnessError) as caught:
        _load(model, path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: schema_version 99 ") and "reads (1)" in message
    assert "upgrade harness" in message and "re-run" in message


def test_an_unknown_version_of_the_nested_data_inspection_names_run_json(tmp_path):
    path = RunLayout(tmp_path).run_json
    data = json.loads(RunLayout(FIXTURE).run_json.read_text())
    data["data_inspect"]["schema_version"] = 7
    path.write_text(json.dumps(data))
    with pytest.raises(HarnessError, match=rf"^{path}: schema_version 7 is not one this harness reads \(1, 2\)"):
        RunRecord.load(path)


def test_an_old_run_json_without_a_version_loads_as_the_first_version():
    raw = json.loads(RunLayout(FIXTURE).run_json.read_text())
    assert "schema_version" not in raw and "schema_version" not in raw["data_inspect"]
    record = RunRecord.load(RunLayout(FIXTURE).run_json)
    assert record.schema_version == 1 and record.data_inspect is not None
    assert record.arms == raw["arms"] and record.stage_wall_times == raw["stage_wall_times"]
    assert record.data_inspect.facts() == raw["data_inspect"], "an old inspection reads back exactly as it was written"


def _strip_versions(run_dir: Path) -> None:
    for path in run_dir.rglob("*.json"):
        data = json.loads(path.read_text())
        data.pop("schema_version", None)
        if isinstance(data.get("data_inspect"), dict):
            data["data_inspect"].pop("schema_version", None)
        path.write_text(json.dumps(data))


def _report(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "report", str(run_dir), "--format", "md"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )


def test_harness_report_renders_an_old_run_and_refuses_an_unknown_version_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    _strip_versions(run_dir)
    rendered = _report(run_dir)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert "Data and leakage" in RunLayout(run_dir).report("md").read_text()
    path = RunLayout(run_dir).result("instruct")
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 2}))
    refused = _report(run_dir)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert lines[-1].startswith("error:") and "schema_version 2" in lines[-1] and "instruct.json" in lines[-1], refused.stderr


def test_the_layout_names_every_path_of_a_run(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.result("domain") == tmp_path / "results" / "domain.json"
    assert layout.samples("domain", "safety") == tmp_path / "samples" / "domain" / "safety.jsonl"
    assert layout.manifest("domain") == tmp_path / "checkpoints" / "domain" / "manifest.json"
    assert layout.merged("domain", "abc") == tmp_path / "merged" / "domain-abc"
    quick = layout.partial(["safety", "perplexity"], 5)
    assert quick.result("base") == tmp_path / "partial" / "perplexity+safety-limit5" / "results" / "base.json"


PATH_NAMES = ('"results"', '"samples"', '"checkpoints"', '"merged"', '"partial"', '"run.json"', '"manifest.json"',
              '"grid.json"', '"config.yaml"', '"report.md"', '"report.html"', '"generations"', '".lock"', '"tracking.json"', '"mlruns"',
              '"tensorboard"')


def test_no_module_but_the_layout_spells_a_path_inside_the_run_directory():
    sources = [p for folder in ("harness", "stages", "evals", "reports") for p in (REPO / folder).rglob("*.py")]
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sources
        if path.name != "layout.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(f"/ {name}" in line for name in PATH_NAMES)
    ]
    assert offenders == []


def _record(**overrides) -> TrainingRecord:
    measured = dict(trainable_params=10, total_params=1000, wall_time_s=2.5, peak_rss_mb=512.0, train_tokens=96,
                    tokens_per_s=38.4, bf16_autocast=False, world_size=2,
                    train_loss=[LossPoint(step=1, loss=2.0)], eval_loss=[LossPoint(step=0, loss=2.2, epoch=0.0)])
    return TrainingRecord(**{**measured, **overrides})


def test_the_manifest_is_built_from_the_origin_the_arm_config_and_the_stage_record():
    config = load_config(TINY, ["lora.r=8", "model.quantization=nf4"])
    origin = CheckpointOrigin(arm="domain", stage="domain", parent=None, base_model="m", base_fingerprint="b",
                              start_fingerprint="b", config_hash="k", data_fingerprints={"domain_pdf": "p"},
                              training_data=["doc.pdf@sha256:p"], seed=5)
    manifest = stage_manifest(origin, config, _record(), "adapter-fp")
    assert manifest.model_dump(include=set(CheckpointOrigin.model_fields)) == origin.model_dump()
    assert manifest.model_dump(include=set(TrainingRecord.model_fields) - {"world_size"}) == _record().model_dump(exclude={"world_size"})
    assert manifest.hardware["world_size"] == 2 and manifest.lora["r"] == 8 and manifest.quantization == "nf4"
    assert manifest.adapter_fingerprint == "adapter-fp" and manifest.determinism.seed == 5 and manifest.versions
    assert (manifest.training["window_tokens"], manifest.training["max_steps"]) == (64, 2)
    assert "max_length" not in manifest.training, "the SFT example limit does not apply to domain windows"


def test_the_leakage_check_reads_the_run_data_without_loading_it_again(tiny_tokenizer, monkeypatch):
    config = load_config(TINY)
    context = pipeline.RunContext(config, Path("unused"), load_run_data(config), tiny_tokenizer, "base-ref", "base-fp")

    def no_second_extraction(*_args, **_kwargs):
        raise AssertionError("the PDF was extracted again")

    monkeypatch.setattr("harness.data.run_data.load_domain_corpus", no_second_extraction)
    assert pipeline.check_leakage(context).domain.sections == len(context.data.corpus.sections)


def test_base_weights_are_hashed_once_per_process(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    before = loading._hash_weight_files.cache_info().misses
    first, again = loading.weights_fingerprint(str(tmp_path)), loading.weights_fingerprint(str(tmp_path))
    assert first == again and loading._hash_weight_files.cache_info().misses == before + 1



def test_a_data_inspection_from_before_versions_reads_as_version_1_with_its_pdf():
    """Its one PDF stays as written; a new inspection (version 2) lists documents instead (tests/test_data_inspect.py)."""
    old = RunRecord.load(RunLayout(FIXTURE).run_json).data_inspect
    assert old.schema_version == 1 and old.domain.pdf.endswith(".pdf") and old.domain.documents == []
