"""Read a saved run directory into one typed view; the only module of `reports` that touches disk for input.

Results are required (a report about nothing is a user error); everything else is optional and
simply absent from the view, so a partial run still renders. A file that exists but does not parse
is an error naming that file, never silently skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.core.errors import HarnessError
from harness.run.grid_results import GRID_RESULTS, GridResult
from harness.run.lineage import Lineage, lineage_of
from harness.run.manifest import MANIFEST_NAME, Manifest
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
    run_info: dict[str, Any] = field(default_factory=dict)
    """The contents of run.json (timings, versions, hardware, data_inspect)."""
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


def _load_results(run_dir: Path, order: list[str]) -> dict[str, EvalResult]:
    files = sorted((run_dir / "results").glob("*.json")) if (run_dir / "results").is_dir() else []
    if not files:
        raise HarnessError(
            f"{run_dir}: no results/*.json to report on; run `harness run-all` or `harness eval` to produce them first"
        )
    results = {}
    by_name = {path.stem: path for path in files}
    for path in (by_name[name] for name in in_lineage_order(list(by_name), order)):
        try:
            results[path.stem] = EvalResult.load(path)
        except (OSError, ValueError) as exc:
            raise HarnessError(f"{path}: not a valid results file ({_first_error(exc)}); re-run `harness eval` for it") from exc
    return results


def _load_manifests(run_dir: Path, order: list[str]) -> dict[str, Manifest]:
    root = run_dir / "checkpoints"
    manifests = {}
    for path in sorted(root.glob(f"*/{MANIFEST_NAME}")) if root.is_dir() else []:
        if path.parent.name.startswith("."):
            continue
        try:
            manifests[path.parent.name] = Manifest.load(path.parent)
        except (OSError, ValueError) as exc:
            raise HarnessError(f"{path}: not a valid checkpoint manifest ({_first_error(exc)}); retrain that stage") from exc
    return {name: manifests[name] for name in in_lineage_order(list(manifests), order)}


def _load_samples(run_dir: Path, checkpoints: list[str]) -> dict[str, dict[str, list[SampleRecord]]]:
    samples: dict[str, dict[str, list[SampleRecord]]] = {}
    for checkpoint in checkpoints:
        folder = run_dir / "samples" / checkpoint
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            try:
                samples.setdefault(checkpoint, {})[path.stem] = read_samples(path)
            except (OSError, ValueError) as exc:
                raise HarnessError(f"{path}: not a valid per-sample log ({_first_error(exc)}); re-run `harness eval`") from exc
    return samples


def _load_grid(run_dir: Path) -> GridResult | None:
    path = run_dir / GRID_RESULTS
    if not path.is_file():
        return None
    try:
        return GridResult.load(path)
    except (ValidationError, ValueError) as exc:
        raise HarnessError(f"{path}: not a valid grid results file ({_first_error(exc)}); re-run `harness run-all` to rebuild it") from exc


def _load_run_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: not valid JSON ({exc}); restore it or delete it to render without run facts") from exc
    if not isinstance(info, dict):
        raise HarnessError(f"{path}: expected a JSON object; restore it or delete it to render without run facts")
    return info


def _load_config(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    path = run_dir / "config.yaml"
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
    config, config_text = _load_config(run_dir)
    try:
        lineage = lineage_of(config)
    except ValidationError as exc:
        raise HarnessError(f"{run_dir / 'config.yaml'}: its arms table is not valid ({_first_error(exc)}); restore the file") from exc
    order = lineage.checkpoint_order()
    results = _load_results(run_dir, order)
    return RunView(
        run_dir=run_dir,
        results=results,
        lineage=lineage,
        manifests=_load_manifests(run_dir, order),
        grid=_load_grid(run_dir),
        samples=_load_samples(run_dir, list(results)),
        config=config,
        config_text=config_text,
        run_info=_load_run_info(run_dir),
    )
