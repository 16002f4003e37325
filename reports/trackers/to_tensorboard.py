"""Publish a run to TensorBoard: one event-file folder per checkpoint under `<log_dir>/<run name>/`, its
metrics and deltas as scalars at step 0 and its facts as a text table, plus the report (TensorBoard
renders Markdown) and the config as text in the run's own folder.

The folder shows the saved results, like the report, so it is replaced whole each time they change;
written with tensorboard's own event writer, without torch.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.core.atomic import atomic_directory
from harness.reports.trackers.content import TrackedRun
from harness.run.config import TensorboardTracking
from harness.run.layout import RunLayout

REPORT_FILE = "report.md"


def log_root(run: TrackedRun, settings: TensorboardTracking) -> Path:
    return (settings.log_dir or RunLayout(run.run_dir).tensorboard_dir) / run.name


def publish(run: TrackedRun, settings: TensorboardTracking) -> str:
    root = log_root(run, settings)
    with atomic_directory(root) as folder:
        for checkpoint in run.checkpoints:
            table = "\n".join(["| fact | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in checkpoint.params.items())])
            _write_events(folder / checkpoint.name, checkpoint.metrics, {"checkpoint": table})
        texts = {path.name: path.read_text(encoding="utf-8") for path in run.files if path.name in (REPORT_FILE, "config.yaml")}
        _write_events(folder, {}, {name: f"```\n{text}\n```" if name.endswith(".yaml") else text for name, text in texts.items()})
    return f"{root} (`tensorboard --logdir {root.parent}`)"


def _write_events(folder: Path, scalars: dict[str, float], texts: dict[str, str]) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    text_plugin = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    values = [Summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()]
    values += [
        Summary.Value(
            tag=tag, metadata=text_plugin,
            tensor=TensorProto(dtype="DT_STRING", string_val=[text.encode()], tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)])),
        )
        for tag, text in texts.items()
    ]
    folder.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(folder))
    try:
        writer.add_event(Event(wall_time=time.time(), step=0, summary=Summary(value=values)))
    finally:
        writer.close()
