"""Publish a run to MLflow: a parent run for the harness run (its config as parameters, its files as
artifacts) and one nested run per checkpoint (metrics, deltas, checkpoint facts).

Everything goes through an `MlflowClient` bound to the configured tracking URI, so nothing changes
MLflow's process-wide active run or URI.
"""

from __future__ import annotations

import os
import time

from harness.core.errors import HarnessError, first_line
from harness.reports.trackers.content import TrackedCheckpoint, TrackedRun
from harness.run.config import MlflowTracking
from harness.run.layout import RunLayout

PARAM_VALUE_LIMIT = 6000
"""The longest parameter value MLflow stores; a longer config value is cut (config.yaml, an artifact, keeps it whole)."""


def tracking_uri(run: TrackedRun, settings: MlflowTracking) -> str:
    return settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or RunLayout(run.run_dir.resolve()).mlflow_store.as_uri()


def publish(run: TrackedRun, settings: MlflowTracking) -> str:
    uri = tracking_uri(run, settings)
    if uri.startswith("file:"):
        # MLflow 3 refuses its file store unless asked for it; a `file:` URI in the config is that request.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    experiment = settings.experiment or run.name
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        parent_id = _publish_parent(client, experiment_id, run)
    except MlflowException as exc:
        raise HarnessError(f"tracking.mlflow: {uri}: {first_line(exc)}; check tracking.mlflow") from exc
    return f"experiment {experiment!r}, run {parent_id} at {uri}"


def _publish_parent(client, experiment_id: str, run: TrackedRun) -> str:
    from mlflow.entities import Param

    parent = client.create_run(experiment_id, run_name=run.name, tags={"harness.run_dir": str(run.run_dir.resolve())})
    parent_id = parent.info.run_id
    try:
        client.log_batch(parent_id, params=[Param(key, value[:PARAM_VALUE_LIMIT]) for key, value in run.params.items()])
        for path in run.files:
            client.log_artifact(parent_id, str(path))
        for checkpoint in run.checkpoints:
            _publish_checkpoint(client, experiment_id, parent_id, run, checkpoint)
    except BaseException:
        client.set_terminated(parent_id, status="FAILED")
        raise
    client.set_terminated(parent_id)
    return parent_id


def _publish_checkpoint(client, experiment_id: str, parent_id: str, run: TrackedRun, checkpoint: TrackedCheckpoint) -> None:
    from mlflow.entities import Metric, Param

    tags = {"mlflow.parentRunId": parent_id, "harness.run": run.name, "harness.checkpoint": checkpoint.name}
    child = client.create_run(experiment_id, run_name=checkpoint.name, tags=tags)
    now = int(time.time() * 1000)
    client.log_batch(
        child.info.run_id,
        metrics=[Metric(key, value, now, 0) for key, value in checkpoint.metrics.items()],
        params=[Param(key, value) for key, value in checkpoint.params.items()],
    )
    client.set_terminated(child.info.run_id)
