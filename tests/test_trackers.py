"""`tracking:` publishes eval results to MLflow, W&B and TensorBoard, read back with each tracker's own reader.

(Training losses through transformers' `training.report_to` are tests/test_tracking.py's.) Everything runs
for real on a copy of the report fixture: MLflow on a local file store, W&B offline, TensorBoard event files.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.core.errors import HarnessError
from harness.pipeline import publish_results
from harness.reports.trackers import check_trackers
from harness.reports.trackers.content import checkpoint_metrics
from harness.run.config import HarnessConfig, TrackingConfig, load_config
from harness.run.layout import RunLayout
from harness.run.results import EvalResult

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run_fixture"
CHECKPOINTS = ("base", "domain", "instruct-only", "instruct")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "run")
    return tmp_path / "run"


def tracking_config(run_dir: Path, *overrides: str) -> HarnessConfig:
    return load_config(run_dir / "config.yaml", list(overrides))


def expected_metrics(run_dir: Path) -> dict[str, dict[str, float]]:
    """checkpoint -> every number a tracker should hold for it, straight from the results files."""
    return {name: checkpoint_metrics(EvalResult.load(run_dir / "results" / f"{name}.json")) for name in CHECKPOINTS}


def test_metric_keys_carry_intervals_and_paired_deltas(run_dir):
    result = EvalResult.load(run_dir / "results" / "instruct.json")
    metrics = checkpoint_metrics(result)
    delta = result.deltas["crisis_referral_rate"]["instruct-only"]
    assert metrics["crisis_referral_rate_ci_low"] == result.metrics["crisis_referral_rate"].ci_low
    assert metrics["delta_vs_instruct-only/crisis_referral_rate"] == delta.delta
    assert metrics["delta_vs_instruct-only/crisis_referral_rate_p_value"] == delta.p_value
    assert len(metrics) == 3 * len(result.metrics) + 4 * sum(len(by_ref) for by_ref in result.deltas.values())


def test_mlflow_file_store_holds_a_parent_run_and_one_nested_run_per_checkpoint(run_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    config = tracking_config(run_dir, "tracking.trackers=[mlflow]", f"tracking.mlflow.tracking_uri={uri}")
    report_files, published = publish_results(config, run_dir)
    assert len(published) == 1 and published[0].startswith("mlflow: experiment 'fixture', run ")

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("fixture")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert len(parents) == 1 and sorted(children) == sorted(CHECKPOINTS)
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["eval.bootstrap_resamples"] == "1000" and parent.data.params["lora.r"] == "8"
    assert parent.data.params["data.domain.heldout_fraction"] == "0.1" and parent.data.params["lora.target_modules"] == (
        '["q_proj", "k_proj", "v_proj", "o_proj"]'
    )
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert artifacts == {"report.md", "report.html", "config.yaml"}
    for name, metrics in expected_metrics(run_dir).items():
        assert children[name].data.metrics == pytest.approx(metrics, rel=1e-12)
        assert children[name].data.params["arm"] == name
    assert {Path(p).name for p in report_files} == {"report.md", "report.html", "README.md"}, "the report and the model cards"


def test_mlflow_publishes_the_same_results_once_and_changed_results_again(run_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    config = tracking_config(run_dir, "tracking.trackers=[mlflow]", f"tracking.mlflow.tracking_uri={uri}")
    publish_results(config, run_dir)
    assert publish_results(config, run_dir)[1] == [], "unchanged results are not sent twice"
    path = run_dir / "results" / "base.json"
    result = EvalResult.load(path)
    result.metrics["rouge1"].value = 0.5
    result.save(path)
    assert len(publish_results(config, run_dir)[1]) == 1

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("fixture").experiment_id])
    assert sorted(r.data.metrics["rouge1"] for r in runs if r.info.run_name == "base")[-1] == 0.5
    assert len([r for r in runs if "mlflow.parentRunId" not in r.data.tags]) == 2
    record = json.loads(RunLayout(run_dir).tracking_json.read_text())
    assert list(record["publications"]) == ["mlflow"]


def wandb_records(path: Path):
    """The protobuf records of a `.wandb` file: a 7-byte header, then LevelDB-log chunks in 32 KiB blocks.

    wandb 0.31 ships no Python reader for it (the Go `wandb-core` writes and reads it), so the chunks are
    joined here and each record is decoded with wandb's own `Record` message.
    """
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, header, position, pending = 32768, 7, 7, b""
    while position + header <= len(data):
        if block - position % block < header:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + header])
        pending += data[position + header : position + header + length]
        position += header + length
        if kind in (1, 4) and pending:  # a FULL record or the LAST chunk of one
            record = Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_wandb_run(folder: Path) -> dict:
    run: dict = {"summary": {}, "files": []}
    for record in wandb_records(next(folder.glob("*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(group=record.run.run_group, name=record.run.display_name, job_type=record.run.job_type,
                       config={item_key(item): json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "summary":
            run["summary"].update({item_key(item): json.loads(item.value_json) for item in record.summary.update})
        elif kind == "files":
            run["files"] += [file.path for file in record.files.files]
    return run


def test_wandb_offline_runs_grouped_per_harness_run(run_dir, tmp_path):
    config = tracking_config(run_dir, "tracking.trackers=[wandb]", f"tracking.wandb.dir={tmp_path / 'wb'}")
    _, published = publish_results(config, run_dir)
    assert published == [f"wandb: group 'fixture' in project 'harness' (offline, {tmp_path / 'wb' / 'wandb'})"]

    runs = {run["name"]: run for run in map(read_wandb_run, (tmp_path / "wb" / "wandb").glob("offline-run-*"))}
    assert sorted(runs) == sorted([*CHECKPOINTS, "fixture report"])
    assert {run["group"] for run in runs.values()} == {"fixture"}
    for name, metrics in expected_metrics(run_dir).items():
        assert runs[name]["job_type"] == "eval"
        assert {k: v for k, v in runs[name]["summary"].items() if not k.startswith("_")} == pytest.approx(metrics, rel=1e-12)
        assert runs[name]["config"]["checkpoint"]["fingerprint"]
        assert runs[name]["config"]["harness"]["eval"]["bootstrap_resamples"] == 1000
    report_run = runs["fixture report"]
    assert report_run["job_type"] == "report"
    assert {"report.md", "report.html", "config.yaml"} <= set(report_run["files"])
    kept = next((tmp_path / "wb" / "wandb").glob("offline-run-*/files/report.md"))
    assert not kept.is_symlink() and kept.read_bytes() == (run_dir / "report.md").read_bytes()


def test_tensorboard_event_files_per_checkpoint_from_harness_report(run_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config_file = run_dir / "config.yaml"
    config_file.write_text(config_file.read_text() + f"tracking:\n  trackers: [tensorboard]\n  tensorboard: {{log_dir: {tmp_path / 'tb'}}}\n")
    result = CliRunner().invoke(app, ["report", str(run_dir)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert f"tensorboard: {tmp_path / 'tb' / 'fixture'}" in result.output

    for name, metrics in expected_metrics(run_dir).items():
        events = EventAccumulator(str(tmp_path / "tb" / "fixture" / name), size_guidance={"scalars": 0})
        events.Reload()
        assert {tag: events.Scalars(tag)[0].value for tag in events.Tags()["scalars"]} == pytest.approx(metrics, rel=1e-6)
    root = EventAccumulator(str(tmp_path / "tb" / "fixture"))
    root.Reload()
    report = root.Tensors("report.md")[0].tensor_proto.string_val[0].decode()
    assert report == (run_dir / "report.md").read_text(encoding="utf-8")

    again = CliRunner().invoke(app, ["report", str(run_dir)], terminal_width=400)
    assert again.exit_code == 0 and "tensorboard:" not in again.output, "the same results are published once"


def test_a_missing_tracker_package_is_one_line_naming_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(HarnessError) as error:
        check_trackers(TrackingConfig(trackers=["tensorboard", "wandb"]))
    assert str(error.value) == (
        "tracking.trackers lists wandb, but the wandb package is not installed; "
        "`pip install 'harness[wandb]'` or remove wandb from tracking.trackers"
    )
    output = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run-all", "--config", str(REPO / "configs" / "tiny.yaml"), "--output", str(output), "--set", "tracking.trackers=[wandb]"],
        terminal_width=400,
    )
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {error.value}"
    assert not output.exists(), "nothing is trained or written before the check"


def test_tracking_settings_are_checked(tmp_path):
    with pytest.raises(HarnessError, match=r"key `tracking.trackers.0`: Input should be 'mlflow', 'wandb' or 'tensorboard'"):
        load_config(REPO / "configs" / "tiny.yaml", ["tracking.trackers=[neptune]"])
    with pytest.raises(HarnessError, match=r"key `tracking.trackers`: .*repeats a tracker"):
        load_config(REPO / "configs" / "tiny.yaml", ["tracking.trackers=[mlflow, mlflow]"])
    relative = load_config(REPO / "configs" / "tiny.yaml", ["tracking.mlflow.tracking_uri=file:mlruns"])
    assert relative.tracking.mlflow.tracking_uri == (Path.cwd() / "mlruns").as_uri()
