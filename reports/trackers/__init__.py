"""Eval results in experiment trackers: MLflow, Weights & Biases and TensorBoard (`tracking:` in the config).

Published from the saved run, like the report, so `run-all`, `harness report` and `harness rescore`
publish alike: one tracker run per checkpoint, grouped per harness run (MLflow: runs nested under a
parent run that keeps the files; W&B: `group=` the run's name, with a `report` run that keeps them;
TensorBoard: a folder per checkpoint). `RUN_DIR/tracking.json` records what each tracker last
received, so the same results are sent once, and results that changed (a rescore) are sent again.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from harness.core.errors import HarnessError, first_line
from harness.reports.load import load_run
from harness.reports.trackers import to_mlflow, to_tensorboard, to_wandb
from harness.reports.trackers.content import TrackedRun, tracked_run
from harness.run.config import Tracker, TrackingConfig, config_hash
from harness.run.layout import RunLayout
from harness.run.schema import VersionedRecord

PUBLISHERS: dict[Tracker, tuple[str, Callable[[TrackedRun, Any], str]]] = {
    "mlflow": ("mlflow", to_mlflow.publish),
    "wandb": ("wandb", to_wandb.publish),
    "tensorboard": ("tensorboard", to_tensorboard.publish),
}
"""tracker -> (the module it needs, how results reach it given the tracker's own section of `tracking`);
each installs as `pip install 'harness[<tracker>]'`."""


class Publication(BaseModel):
    digest: str
    """`TrackedRun.digest` with this tracker's settings: unchanged results to an unchanged place are not sent again."""
    where: str
    published: str


class TrackingRecord(VersionedRecord):
    """RUN_DIR/tracking.json: what each tracker last received from this run."""

    publications: dict[str, Publication] = {}


def check_trackers(settings: TrackingConfig) -> None:
    """Fail before any work when a configured tracker's package is missing."""
    for tracker in settings.trackers:
        module = PUBLISHERS[tracker][0]
        if importlib.util.find_spec(module) is None:
            raise HarnessError(
                f"tracking.trackers lists {tracker}, but the {module} package is not installed; "
                f"`pip install 'harness[{tracker}]'` or remove {tracker} from tracking.trackers"
            )


def publish_run(run_dir: Path, settings: TrackingConfig | None = None) -> list[str]:
    """Send the run's saved results to every configured tracker that does not hold them yet; say where each went.

    `settings` None: the `tracking` section of the run's own config.yaml (`harness report`).
    """
    view = load_run(run_dir)
    layout = RunLayout(run_dir)
    settings = settings or _saved_settings(view.config, layout.config)
    if not settings.trackers:
        return []
    check_trackers(settings)
    run = tracked_run(view)
    record = _read_record(layout.tracking_json)
    published = []
    for tracker in settings.trackers:
        section = getattr(settings, tracker)
        digest = config_hash({"results": run.digest, "settings": section.model_dump(mode="json")})
        if tracker in record.publications and record.publications[tracker].digest == digest:
            continue
        where = PUBLISHERS[tracker][1](run, section)
        record.publications[tracker] = Publication(
            digest=digest, where=where, published=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        )
        record.save(layout.tracking_json)
        published.append(f"{tracker}: {where}")
    return published


def _saved_settings(config: dict[str, Any], path: Path) -> TrackingConfig:
    try:
        return TrackingConfig.model_validate(config.get("tracking") or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(["tracking", *(str(part) for part in error["loc"])])
        raise HarnessError(f"{path}: key `{key}`: {error['msg']}; fix it in that file") from None


def _read_record(path: Path) -> TrackingRecord:
    if not path.is_file():
        return TrackingRecord()
    try:
        return TrackingRecord.load(path)
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: not a valid tracking record ({first_line(exc)}); delete it to publish to every tracker again") from exc


__all__ = ["check_trackers", "publish_run"]
