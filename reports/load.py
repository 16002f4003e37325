"""Read a saved run directory into one typed view; the only module of `reports` that touches disk for input.

Results are required (a report about nothing is a user error); everything else is optional and
simply absent from the view, so a partial run still renders. A file that exists but does not parse
is an error naming that file, never silently skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.core.errors import HarnessError
from harness.run.grid_results import GridResult
from harness.run.layout import MANIFEST_FILE, RunLayout
from harness.run.lineage import Lineage, lineage_of
from harness.run.manifest import Manifest
from harness.run.record import RunRecord
from harness.run.results import EvalResult, SampleRecord, read_samples


@dataclass(frozen=True)
class RunView:
    run_dir: Path
    results: dict[str, EvalResult]
    """checkpoint name -> results, in lineage order (base, the arms in training order, then others)."""
    manifests: dict[str, Manifest] = field(default_factory=dict)
    samples: dict[str, dict[str, list[SampleRecord]]] = field(default_factory=dict)
    """checkpoint -> eval name -> per-sample records."""
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str | None = None
    run_info: RunRecord = field(default_factory=RunRecord)
    """run.json (timings, versions, hardware, data_inspect); empty when the run has none."""
    lineage: Lineage = field(default_factory=Lineage)
    """The run's arms table and comparisons, from its config.yaml."""
    grid: GridResult | None = None
    """grid.json of a run with a grid or seed replicates."""

    @property
    def checkpoints(self) -> list[str]:
        return list(self.results)


def in_lineage_order(names: list[str], order: list[str]) -> list[str]:
    """`names` with the lineage's checkpoints first, in its order, then any others alphabetically."""
    return sorted(names, key=lambda name: (order.index(name), "") if name in order else (len(order), name))


def _load_results(layout: RunLayout, order: list[str]) -> dict[str, EvalResult]:
    files = sorted(layout.results_dir.glob("*.json")) if layout.results_dir.is_dir() else []
    if not files:
        raise HarnessError(
            f"{layout.root}: no results/*.json to report on; run `harness run-all` or `harness eval` to produce them first"
        )
    results = {}
    by_name = {path.stem: path for path in files}
    for path in (by_name[name] for name in in_lineage_order(list(by_name), order)):
        try:
            results[path.stem] = EvalResult.load(path)
        except (OSError, ValueError) as exc:
            raise HarnessError(f"{path}: not a valid results file ({_first_error(exc)}); re-run `harness eval` for it") from exc
    return results


def _load_manifests(layout: RunLayout, order: list[str]) -> dict[str, Manifest]:
    root = layout.checkpoints_dir
    manifests = {}
    for path in sorted(root.glob(f"*/{MANIFEST_FILE}")) if root.is_dir() else []:
        if path.parent.name.startswith("."):
            continue
        try:
            manifests[path.parent.name] = Manifest.load(path.parent)
        except (OSError, ValueError) as exc:
            raise HarnessError(f"{path}: not a valid checkpoint manifest ({_first_error(exc)}); retrain that stage") from exc
    return {name: manifests[name] for name in in_lineage_order(list(manifests), order)}


def _load_samples(layout: RunLayout, checkpoints: list[str]) -> dict[str, dict[str, list[SampleRecord]]]:
    samples: dict[str, dict[str, list[SampleRecord]]] = {}
    for checkpoint in checkpoints:
        folder = layout.samples_of(checkpoint)
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            try:
                samples.setdefault(checkpoint, {})[path.stem] = read_samples(path)
            except (OSError, ValueError) as exc:
                raise HarnessError(f"{path}: not a valid per-sample log ({_first_error(exc)}); re-run `harness eval`") from exc
    return samples


def _load_grid(layout: RunLayout) -> GridResult | None:
    path = layout.grid_json
    if not path.is_file():
        return None
    try:
        return GridResult.load(path)
    except (ValidationError, ValueError) as exc:
        raise HarnessError(f"{path}: not a valid grid results file ({_first_error(exc)}); re-run `harness run-all` to rebuild it") from exc


def _load_run_info(layout: RunLayout) -> RunRecord:
    path = layout.run_json
    if not path.is_file():
        return RunRecord()
    try:
        return RunRecord.load(path)
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: not a valid run record ({_first_error(exc)}); restore it or delete it to render without run facts") from exc


def _load_config(layout: RunLayout) -> tuple[dict[str, Any], str | None]:
    path = layout.config
    if not path.is_file():
        return {}, None
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise HarnessError(f"{path}: not a readable YAML text file; restore it or delete it to render without the config") from exc
    return (data if isinstance(data, dict) else {}), text


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'top level'}: {first['msg']}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def load_run(run_dir: Path) -> RunView:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: run directory not found; pass the folder `harness run-all` wrote (e.g. runs/<name>)")
    layout = RunLayout(run_dir)
    config, config_text = _load_config(layout)
    try:
        lineage = lineage_of(config)
    except ValidationError as exc:
        raise HarnessError(f"{layout.config}: its arms table is not valid ({_first_error(exc)}); restore the file") from exc
    order = lineage.checkpoint_order()
    results = _load_results(layout, order)
    return RunView(
        run_dir=run_dir,
        results=results,
        lineage=lineage,
        manifests=_load_manifests(layout, order),
        grid=_load_grid(layout),
        samples=_load_samples(layout, list(results)),
        config=config,
        config_text=config_text,
        run_info=_load_run_info(layout),
    )
