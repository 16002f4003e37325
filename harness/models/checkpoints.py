"""The checkpoint registry: where each arm lives in a run, and what any checkpoint reference means.

A reference given to `harness eval --checkpoint` may be `base`, an arm name of the configured run, a
run's checkpoint directory, any PEFT adapter directory, a full model directory, or a hub id. Each
resolves to a `ResolvedCheckpoint`: the full-precision model to start from plus an optional adapter.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from harness.run.config import HarnessConfig
from harness.core.errors import HarnessError, first_line
from harness.run.layout import MANIFEST_FILE, RunLayout
from harness.run.manifest import Manifest
from harness.models.loading import check_weight_files, resolve_model, weights_fingerprint


@dataclass(frozen=True)
class ResolvedCheckpoint:
    name: str
    """The results name: an arm name, or the directory / hub id for external refs."""
    arm: str
    start_ref: str
    """Full-precision model (directory or hub id) the adapter applies to; for `instruct`, the merged domain model."""
    adapter_dir: Path | None
    base_model: str
    fingerprint: str
    parent: str | None = None
    manifest: Manifest | None = None


def is_complete(directory: Path) -> bool:
    return (Path(directory) / MANIFEST_FILE).is_file()


def adapter_fingerprint(adapter_dir: Path, *, canonical: bool = True) -> str:
    """Hash of the adapter's weights and settings; equal adapters hash equal across processes.

    PEFT writes `target_modules` from a set, in an order that changes between processes, so the
    settings are hashed with that list sorted. `canonical=False` hashes the files as they are, as
    manifests written before that change recorded it.
    """
    digest = hashlib.sha256()
    for file in sorted(Path(adapter_dir).glob("adapter_*")):
        digest.update(file.name.encode())
        raw = file.read_bytes()
        digest.update(_canonical_adapter_config(raw) if canonical and file.name == "adapter_config.json" else raw)
    return digest.hexdigest()[:16]


def _canonical_adapter_config(raw: bytes) -> bytes:
    try:
        settings = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(settings, dict) and isinstance(settings.get("target_modules"), list):
        settings["target_modules"] = sorted(map(str, settings["target_modules"]))
    return json.dumps(settings, sort_keys=True).encode()


def lineage_fingerprint(*parts: str | None) -> str:
    """Fingerprint of a base plus a chain of adapters: equal fingerprints mean identical weights."""
    return hashlib.sha256("/".join(p or "-" for p in parts).encode()).hexdigest()[:16]


def read_checkpoint(directory: Path) -> tuple[Manifest | None, str | None]:
    """(manifest, None) for a complete checkpoint that can be trusted, (None, why) for a damaged one: a
    manifest that does not parse, or adapter files that are not the ones the manifest fingerprinted
    (truncated or replaced after training)."""
    directory = Path(directory)
    try:
        manifest = Manifest.load(directory)
    except (OSError, ValueError) as exc:
        return None, f"{directory / MANIFEST_FILE}: not a valid manifest ({first_line(exc)})"
    recorded = manifest.adapter_fingerprint
    if recorded is not None and recorded not in (adapter_fingerprint(directory), adapter_fingerprint(directory, canonical=False)):
        return None, f"{directory}: adapter files do not match the fingerprint in {MANIFEST_FILE} (truncated or replaced)"
    return manifest, None


def load_complete_manifest(directory: Path, what: str) -> Manifest:
    if not is_complete(directory):
        state = "is incomplete (interrupted?)" if Path(directory).exists() else "does not exist"
        raise HarnessError(f"{directory}: {what} checkpoint {state}; run `harness train` or `harness run-all` to (re)build it")
    manifest, damage = read_checkpoint(directory)
    if manifest is None:
        raise HarnessError(f"{damage}; `harness run-all` retrains {what}")
    return manifest


def check_same_base(manifest: Manifest, directory: Path, model_name: str, base_fp: str) -> None:
    """Refuse a checkpoint trained on another base than the config's: its adapter means nothing on this one."""
    if manifest.base_model != model_name or manifest.base_fingerprint != base_fp:
        raise HarnessError(
            f"{directory / MANIFEST_FILE}: trained on base {manifest.base_model!r} ({manifest.base_fingerprint}) but the config "
            f"uses {model_name!r} ({base_fp}); use the matching config or retrain with --fresh"
        )


def parent_chain(run_dir: Path, manifest: Manifest) -> list[tuple[str, Manifest]]:
    """(arm, manifest) of every checkpoint this one was trained on top of, root first."""
    chain: list[tuple[str, Manifest]] = []
    parent = manifest.parent
    while parent and parent not in {name for name, _ in chain}:
        parent_manifest = load_complete_manifest(RunLayout(run_dir).checkpoint(parent), parent)
        chain.insert(0, (parent, parent_manifest))
        parent = parent_manifest.parent
    return chain


def resolve_arm(config: HarnessConfig, run_dir: Path, arm: str) -> ResolvedCheckpoint:
    """A checkpoint of the configured run, started from its parent's merged weights; `base` needs no training."""
    base_ref = resolve_model(config.model)
    base_fp = weights_fingerprint(base_ref, config.model.revision)
    if arm == "base":
        return ResolvedCheckpoint("base", "base", base_ref, None, config.model.name, base_fp)
    layout = RunLayout(run_dir)
    directory = layout.checkpoint(arm)
    manifest = load_complete_manifest(directory, arm)
    check_same_base(manifest, directory, config.model.name, base_fp)
    chain = parent_chain(run_dir, manifest)
    start_ref = base_ref
    if chain:
        parent, parent_manifest = chain[-1]
        start = layout.merged(parent, parent_manifest.adapter_fingerprint or "")
        if not is_model_dir(start):
            raise HarnessError(f"{start}: merged parent model is missing; re-run `harness run-all` to rebuild it")
        start_ref = str(start)
    fingerprint = lineage_fingerprint(base_fp, *(m.adapter_fingerprint for _, m in chain), manifest.adapter_fingerprint)
    return ResolvedCheckpoint(arm, arm, start_ref, directory, config.model.name, fingerprint, manifest.parent, manifest)


def is_model_dir(directory: Path) -> bool:
    return (Path(directory) / "config.json").is_file()


def resolve_checkpoint(ref: str, config: HarnessConfig, run_dir: Path) -> ResolvedCheckpoint:
    """Turn any user-given checkpoint reference into something loadable, or say what was looked for."""
    if ref == "base" or ref in config.lineage.names:
        return resolve_arm(config, run_dir, ref)
    path = Path(ref).expanduser().resolve()
    if path.is_dir():
        if is_complete(path) and RunLayout(path.parent.parent).checkpoint(path.name) == path:
            return resolve_arm(config, path.parent.parent, path.name)
        if (path / "adapter_config.json").is_file():
            return _external_adapter(path, config)
        if is_model_dir(path):
            check_weight_files(path, config.model.allow_pickle)
            return ResolvedCheckpoint(path.name, "external", str(path.resolve()), None, str(path), weights_fingerprint(str(path)))
    elif ref.count("/") == 1 and not ref.startswith((".", "/", "~")) and not Path(ref.split("/")[0]).is_dir():
        return ResolvedCheckpoint(ref.replace("/", "--"), "external", ref, None, ref, weights_fingerprint(ref, config.model.revision))
    raise HarnessError(
        f"checkpoint {ref!r} not found: looked for `base`, an arm name ({', '.join(config.lineage.names)}) under {run_dir}, "
        "a directory with manifest.json, adapter_config.json or config.json, and a hub id like org/name"
    )


def _external_adapter(path: Path, config: HarnessConfig) -> ResolvedCheckpoint:
    check_weight_files(path, config.model.allow_pickle, adapter=True)
    try:
        adapter_config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{path / 'adapter_config.json'}: not valid JSON ({exc}); fix or re-save the adapter") from exc
    if not isinstance(adapter_config, dict):
        raise HarnessError(f"{path / 'adapter_config.json'}: expected a JSON object; fix or re-save the adapter")
    base = adapter_config.get("base_model_name_or_path") or ""
    if Path(base).is_dir():
        base_ref = base
    elif base == resolve_model(config.model) or base == config.model.name:
        base_ref = resolve_model(config.model)
    else:
        raise HarnessError(
            f"{path / 'adapter_config.json'}: base model {base!r} is not available offline; download it to a directory "
            "and set `base_model_name_or_path` to it, or set model.name to it"
        )
    fingerprint = lineage_fingerprint(weights_fingerprint(base_ref), adapter_fingerprint(path))
    return ResolvedCheckpoint(path.name, "external", base_ref, path, base, fingerprint)
