"""What the run ran on and how long it took: model, data fingerprints, stages, versions, hardware, data checks.

These facts come from run.json, config.yaml and the checkpoint manifests. Any of them may be
missing (an `harness eval` of an outside checkpoint has no manifests), so every lookup falls
back to — instead of failing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from harness.run.manifest import Manifest
from harness.reports.format import MISSING, format_duration, format_number, sparkline
from harness.reports.load import RunView


@dataclass(frozen=True)
class Headline:
    model: str
    arms: str
    started: str
    finished: str
    wall_time: str
    data_fingerprints: list[tuple[str, str]]
    config_hash: str


@dataclass(frozen=True)
class StageRow:
    arm: str
    stage: str
    parent: str
    seed: str
    steps: str
    first_train_loss: str
    last_train_loss: str
    eval_losses: str
    train_trend: str
    """The training loss as a text sparkline."""
    wall_time: str
    train_tokens: str
    tokens_per_s: str
    peak_rss_mb: str
    trainable: str
    precision: str


def _text(value: Any) -> str:
    return MISSING if value is None or value == "" else str(value)


def headline(view: RunView) -> Headline:
    info, results = view.run_info, list(view.results.values())
    model_section = view.config.get("model")
    model = model_section.get("name") if isinstance(model_section, dict) else None
    model = model or next((m.base_model for m in view.manifests.values()), None) or results[0].checkpoint.base_model
    arms = info.arms or view.lineage.checkpoint_order()
    fingerprints: dict[str, str] = {}
    for manifest in view.manifests.values():
        for key, value in manifest.data_fingerprints.items():
            fingerprints.setdefault(key, value)
    return Headline(
        model=str(model),
        arms=", ".join(arms),
        started=_text(info.started),
        finished=_text(info.finished),
        wall_time=format_duration(info.wall_time_s),
        data_fingerprints=sorted(fingerprints.items()),
        config_hash=results[0].config_hash,
    )


def _loss(value: float | None) -> str:
    return format_number(value, 3)


def stage_row(arm: str, manifest: Manifest, stage_wall_times: dict[str, float]) -> StageRow:
    train, evals = manifest.train_loss, manifest.eval_loss
    wall = stage_wall_times.get(arm, manifest.wall_time_s or None)
    return StageRow(
        arm=arm,
        stage=_text(manifest.stage),
        parent=_text(manifest.parent or ("base" if manifest.stage else None)),
        seed=str(manifest.seed),
        steps=str(train[-1].step) if train else MISSING,
        first_train_loss=_loss(train[0].loss if train else None),
        last_train_loss=_loss(train[-1].loss if train else None),
        eval_losses=" → ".join(_loss(p.loss) for p in evals) if evals else MISSING,
        train_trend=sparkline([p.loss for p in train]) if train else MISSING,
        wall_time=format_duration(wall if isinstance(wall, (int, float)) else None),
        train_tokens=format_number(manifest.train_tokens, 0) if manifest.train_tokens else MISSING,
        tokens_per_s=format_number(manifest.tokens_per_s, 1) if manifest.tokens_per_s else MISSING,
        peak_rss_mb=format_number(manifest.peak_rss_mb, 0) if manifest.peak_rss_mb else MISSING,
        trainable=(f"{format_number(manifest.trainable_params, 0)} / {format_number(manifest.total_params, 0)}"
                   if manifest.trainable_params else MISSING),
        precision=(manifest.quantization or ("int8" if manifest.load_in_8bit else "none")) + (" + bf16 autocast" if manifest.bf16_autocast else ""),
    )


def stage_rows(view: RunView) -> list[StageRow]:
    """One row per trained stage (manifests with a stage); base has nothing to train."""
    return [stage_row(arm, m, view.run_info.stage_wall_times) for arm, m in view.manifests.items() if m.stage is not None]


def _scalar(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(_scalar(v) for v in value) if value else "none"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def flatten(data: Any, prefix: str = "", scalar: Callable[[Any], str] = _scalar) -> list[tuple[str, str]]:
    """Nested mappings as `a.b.c -> value` rows, each leaf written by `scalar` (by default for reading: lists
    of scalars joined, numbers to four digits, anything else as compact JSON)."""
    if not isinstance(data, dict):
        return [(prefix or "value", scalar(data))]
    rows = []
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        rows.extend(flatten(value, name, scalar) if isinstance(value, dict) and value else [(name, scalar(value))])
    return rows


def is_check_key(key: str) -> bool:
    """Rows the data section highlights: overlap/leakage measurements, deduplication and failures."""
    leaf = key.rsplit(".", 1)[-1].lower()
    return any(word in leaf for word in ("overlap", "leak", "passed", "dup", "failure"))


@dataclass(frozen=True)
class DataTable:
    """A list of records inside data_inspect (e.g. the section list), shown as its own table."""

    name: str
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class DataGroup:
    name: str
    rows: list[tuple[str, str, bool]]
    """(key, value, is a leakage check)."""
    tables: list[DataTable]


def _is_record_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _data_table(name: str, records: list[dict]) -> DataTable:
    columns = list(dict.fromkeys(key for record in records for key in record))
    return DataTable(name, [str(c) for c in columns], [[_scalar(r.get(c)) for c in columns] for r in records])


def _data_group(name: str, data: dict) -> DataGroup:
    rows = [
        (k, v, is_check_key(k))
        for key, value in data.items()
        if not _is_record_list(value)
        for k, v in flatten(value, str(key))
    ]
    tables = [_data_table(str(key), value) for key, value in data.items() if _is_record_list(value)]
    return DataGroup(name, rows, tables)


def data_inspect_groups(view: RunView) -> list[DataGroup]:
    """run.json's data_inspect: one group per top-level mapping (domain, counseling, ...), loose values first."""
    if view.run_info.data_inspect is None:
        return []
    inspect = view.run_info.data_inspect.facts()
    loose = {key: value for key, value in inspect.items() if not isinstance(value, dict)}
    groups = [_data_group(str(key), value) for key, value in inspect.items() if isinstance(value, dict)]
    return ([_data_group("overall", loose)] if loose else []) + groups


def versions(view: RunView) -> list[tuple[str, str]]:
    found: dict[str, str] = dict(view.run_info.versions)
    if not found:
        for manifest in view.manifests.values():
            for key, value in manifest.versions.items():
                found.setdefault(key, value)
    return [(str(k), _scalar(v)) for k, v in sorted(found.items())]


def hardware(view: RunView) -> list[tuple[str, str]]:
    found = view.run_info.hardware
    if not found:
        found = next((m.hardware for m in view.manifests.values() if m.hardware), {})
    return flatten(found) if found else []


def seeds(view: RunView) -> list[tuple[str, str]]:
    rows = [("config", _scalar(view.config.get("seed")))] if "seed" in view.config else []
    return rows + [(arm, str(m.seed)) for arm, m in view.manifests.items()]


def eval_rows(view: RunView) -> list[tuple[str, str, str, str]]:
    """(checkpoint, eval, items, wall time) for every eval of every checkpoint."""
    return [
        (name, eval_name, str(info.n_items), format_duration(info.wall_time_s))
        for name, result in view.results.items()
        for eval_name, info in result.evals.items()
    ]


def checkpoint_rows(view: RunView) -> list[tuple[str, str, str, str]]:
    """(checkpoint, arm, parent, fingerprint) from the results files."""
    return [(name, r.checkpoint.arm, _text(r.checkpoint.parent), r.checkpoint.fingerprint) for name, r in view.results.items()]
