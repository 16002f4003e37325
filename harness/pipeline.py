"""Run orchestration: data -> stages -> evals -> report, resumable, one run directory.

This is the only module that ties `stages`, `evals` and `reports` together. Each finished stage and
eval is reused on re-run when its inputs are unchanged; a failure or interrupt in a later step never
removes an earlier step's output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.core.atomic import atomic_directory, atomic_write_text, remove_stale_temporaries
from harness.models.checkpoints import (
    adapter_fingerprint,
    check_same_base,
    is_complete,
    is_model_dir,
    load_complete_manifest,
    read_checkpoint,
)
from harness.run.config import HarnessConfig, config_hash
from harness.run.lineage import BASE, ArmSpec
from harness.core.console import console, shown
from harness.core.distributed import is_main_process, main_process_first, wait_for_everyone, world_size
from harness.core.environment import hardware, library_versions
from harness.core.errors import HarnessError
from harness.core.interrupt import noticed_interrupts, raise_if_interrupted
from harness.run.layout import RunLayout
from harness.run.manifest import CheckpointOrigin, Determinism, Manifest, TrainingRecord, base_manifest, stage_manifest
from harness.run.record import DataInspection, RunRecord
from harness.run.results import EvalResult
from harness.models.loading import load_tokenizer, resolve_model, weights_fingerprint
from harness.data.run_data import SPLIT_KEYS, RunData, load_run_data


@dataclass
class RunContext:
    """What every step of one run shares: the config, its directory, the data and the base model."""

    config: HarnessConfig
    run_dir: Path
    data: RunData
    tokenizer: object
    base_ref: str
    base_fingerprint: str
    arm_data: dict[str, RunData] = field(default_factory=dict)
    """Training data of arms that override `data.*`, keyed by their data settings' hash."""

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_dir)

    def data_for(self, config: HarnessConfig) -> RunData:
        """The data an arm trains on: the run's, or its own when its overrides change `data`; loaded once.

        Splits always use the run's seed: a seed replicate varies training, never which items are held out.
        """
        key = config_hash(config.data.model_dump(mode="json", exclude={"safety"}))
        if key == config_hash(self.config.data.model_dump(mode="json", exclude={"safety"})):
            return self.data
        if key not in self.arm_data:
            self.arm_data[key] = load_run_data(config.model_copy(update={"seed": self.config.seed}))
        return self.arm_data[key]


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Refuse a second harness process on the same run directory instead of interleaving writes.

    Only the main process of a multi-process launch takes it: its other processes write nothing.
    """
    if not is_main_process():
        yield
        return
    descriptor = _open_lock_file(run_dir)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HarnessError(f"{run_dir}: another harness command is using this run directory; wait for it to finish") from None
        leftovers = remove_stale_temporaries(run_dir)
        if leftovers:
            console.print(f"[dim]cleared {len(leftovers)} leftover(s) of an interrupted run in {shown(run_dir)}[/dim]")
        yield
    finally:
        os.close(descriptor)


def _open_lock_file(run_dir: Path) -> int:
    """Open (or create) RUN_DIR/.lock without following a link and without truncating it.

    A run directory can come from someone else: a `.lock` that links to another file must not let
    harness empty or touch that file, so the lock is never written, only opened and locked.
    """
    lock = RunLayout(run_dir).lock
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(run_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HarnessError(f"{lock}: is a symbolic link, not harness's lock file; delete the link and re-run") from exc
        reason = "a file, not a folder" if isinstance(exc, FileExistsError) else exc.strerror
        raise HarnessError(f"{run_dir}: cannot be used as a run directory ({reason}); pass --output a writable folder") from exc
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise HarnessError(f"{lock}: is not a regular file, not harness's lock file; delete it and re-run")
    return descriptor


def prepare_run(config: HarnessConfig, run_dir: Path) -> RunContext:
    """Load and split all data, resolve the base model, and record the resolved config in the run."""
    with main_process_first():
        base_ref = resolve_model(config.model)
    tokenizer = load_tokenizer(base_ref, config.model)
    with console.status("Loading and splitting data ..."):
        data = load_run_data(config)
    context = RunContext(config, run_dir, data, tokenizer, base_ref, weights_fingerprint(base_ref, config.model.revision))
    if is_main_process():
        atomic_write_text(context.layout.config, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        directory = context.layout.checkpoint(BASE)
        directory.mkdir(parents=True, exist_ok=True)
        base_manifest(config, context.base_fingerprint, data.fingerprints()).save(directory)
    return context


def _stage_fingerprints(ctx: RunContext, arm_config: HarnessConfig, stage: str) -> dict[str, str]:
    """The data a stage trains on, plus the run's held-out split when the arm trains on data of its own."""
    found = ctx.data_for(arm_config).stage_fingerprints(stage)
    if ctx.data_for(arm_config) is not ctx.data:
        found["heldout_split"] = ctx.data.stage_fingerprints(stage)[SPLIT_KEYS[stage]]
    return found


def _stage_sources(ctx: RunContext, arm_config: HarnessConfig, stage: str) -> list[str]:
    """The data a stage trains on by name and content hash, for its manifest and model card."""
    return ctx.data_for(arm_config).stage_sources(stage)


def stage_hash(config: HarnessConfig, arm: ArmSpec, parent_adapter: str | None) -> str:
    """Every setting that changes what a stage trains (the data is keyed separately by fingerprints)."""
    return config_hash(
        {
            "arm": arm.name,
            "model": config.model.model_dump(mode="json", exclude={"cache_dir"}),
            "lora": config.lora.model_dump(mode="json"),
            "training": config.training.model_dump(mode="json", include={arm.stage, "bf16_autocast"}),
            "data": (
                config.data.domain.model_dump(mode="json", include={"max_length", "stride"})
                if arm.stage == "domain"
                else config.data.counseling.model_dump(mode="json", include={"system_prompt"})
            ),
            "seed": config.seed,
            "parent_adapter": parent_adapter,
        }
    )


def start_model_for(ctx: RunContext, arm: ArmSpec) -> tuple[str, str | None]:
    """The full-precision model an arm trains on, and its parent's adapter fingerprint (None on base)."""
    if arm.parent == BASE:
        return ctx.base_ref, None
    return merge_parent(ctx, ctx.config.lineage.arm(arm.parent))


def merge_parent(ctx: RunContext, parent: ArmSpec) -> tuple[str, str | None]:
    """`parent`'s adapter merged into the parent's own start model (cached under merged/, merged here when missing)."""
    parent_start, _ = start_model_for(ctx, parent)
    parent_dir = ctx.layout.checkpoint(parent.name)
    manifest = load_complete_manifest(parent_dir, f"parent `{parent.name}`")
    check_same_base(manifest, parent_dir, ctx.config.model.name, ctx.base_fingerprint)
    target = ctx.layout.merged(parent.name, manifest.adapter_fingerprint or "")
    if not is_model_dir(target) and is_main_process():
        from harness.stages.merge import merge_parent_adapter

        with console.status(f"Merging the {shown(parent.name)} adapter into full-precision weights ..."):
            merge_parent_adapter(parent_start, parent_dir, target, ctx.config.model)
    wait_for_everyone()
    return str(target), manifest.adapter_fingerprint


def train_arm(ctx: RunContext, arm: ArmSpec, *, fresh: bool = False) -> Manifest:
    """Train one arm unless a complete checkpoint with the same settings and data already exists.

    Under a multi-process launch every process trains, only the main one writes the checkpoint, and
    all leave together, so the next arm sees it complete.
    """
    raise_if_interrupted()
    start_ref, parent_adapter = start_model_for(ctx, arm)
    arm_config = ctx.config.arm_config(arm.name)
    key = stage_hash(arm_config, arm, parent_adapter)
    fingerprints = _stage_fingerprints(ctx, arm_config, arm.stage)
    directory = ctx.layout.checkpoint(arm.name)
    if not fresh and is_complete(directory):
        existing, damage = read_checkpoint(directory)
        if existing is None:
            console.print(f"[yellow]{shown(damage)}; training {shown(arm.name)} again[/yellow]", soft_wrap=True)
        elif existing.config_hash == key and existing.data_fingerprints == fingerprints:
            console.print(f"[dim]{shown(arm.name)}: checkpoint is up to date, skipping ({shown(directory)})[/dim]")
            return existing
    console.rule(f"[bold]Stage {arm.stage} -> {shown(arm.name)}")
    origin = CheckpointOrigin(
        arm=arm.name,
        stage=arm.stage,
        parent=None if arm.parent == BASE else arm.parent,
        base_model=ctx.config.model.name,
        base_fingerprint=ctx.base_fingerprint,
        start_fingerprint=weights_fingerprint(start_ref, ctx.config.model.revision),
        config_hash=key,
        data_fingerprints=fingerprints,
        training_data=_stage_sources(ctx, arm_config, arm.stage),
        seed=arm_config.seed,
    )
    if is_main_process():
        with atomic_directory(directory) as tmp:
            record = _train(ctx, arm, start_ref, tmp)
            manifest = stage_manifest(origin, arm_config, record, adapter_fingerprint(tmp))
            manifest.save(tmp)
    else:
        manifest = stage_manifest(origin, arm_config, _train(ctx, arm, start_ref, directory), None)
    wait_for_everyone()
    return manifest


def _train(ctx: RunContext, arm: ArmSpec, start_ref: str, out_dir: Path) -> TrainingRecord:
    """Train on the arm's own data; score the held-out curve on the run's held-out split, the same for every arm."""
    config = ctx.config.arm_config(arm.name)
    data = ctx.data_for(config)
    if arm.stage == "domain":
        from harness.data.corpus import token_windows
        from harness.stages.domain import train_domain

        settings = config.data.domain
        train_ids = ctx.tokenizer(data.corpus.train_text, add_special_tokens=False)["input_ids"]
        heldout_ids = ctx.tokenizer(ctx.data.corpus.heldout_text, add_special_tokens=False)["input_ids"]
        return train_domain(
            config,
            start_ref=start_ref,
            tokenizer=ctx.tokenizer,
            train_windows=token_windows(train_ids, settings.max_length, settings.stride),
            heldout_windows=token_windows(heldout_ids, settings.max_length, settings.max_length),
            out_dir=out_dir,
        )
    from harness.stages.instruct import train_instruct

    return train_instruct(
        config,
        start_ref=start_ref,
        tokenizer=ctx.tokenizer,
        train=data.counseling.train,
        test=ctx.data.counseling.test,
        out_dir=out_dir,
    )


def check_leakage(ctx: RunContext) -> DataInspection:
    """Run the data inspection on the run's already loaded data and stop before training if any overlap is above its threshold."""
    from harness.data.inspection import inspect_data

    report = inspect_data(ctx.config, ctx.tokenizer, ctx.data_for)
    if report.failures:
        raise HarnessError(f"data leakage check failed: {'; '.join(report.failures)}; fix the split or raise the threshold")
    return report


def evaluate_node(ctx: RunContext, name: str, *, fresh: bool = False) -> EvalResult:
    """Evaluation `name` of the run: the eval suite on its checkpoint with its eval settings (reused when up to
    date, unless `fresh`)."""
    from harness.evals.runner import evaluate_checkpoint
    from harness.models.checkpoints import resolve_arm

    config = ctx.config.evaluation_config(name)
    checkpoint = dataclasses.replace(resolve_arm(config, ctx.run_dir, ctx.config.plan.evaluation(name).checkpoint), name=name)
    return evaluate_checkpoint(config, checkpoint, ctx.data, ctx.run_dir, reuse=not fresh, run_config_hash=ctx.config.fingerprint())


def run_locally(ctx: RunContext, *, fresh: bool) -> dict[str, float]:
    """The default executor: every node in this process, in training order, then every evaluation.

    Returns each trained node's wall time. Under a multi-process launch only the main process evaluates.
    """
    stage_wall_times = {arm.name: train_arm(ctx, arm, fresh=fresh).wall_time_s for arm in ctx.config.lineage.training_order()}
    if is_main_process():
        for name in ctx.config.evaluation_names:
            raise_if_interrupted()
            evaluate_node(ctx, name, fresh=fresh)
    return stage_wall_times


def check_executor(config: HarnessConfig) -> None:
    """Refuse an executor that cannot run here before anything is written."""
    if config.execution.executor != "ray":
        return
    from harness.ray_executor import require_ray

    require_ray()
    if world_size() > 1:
        raise HarnessError("execution.executor ray places whole arms on Ray workers; run it without torchrun/accelerate launch")


def run_all(config: HarnessConfig, run_dir: Path, *, fresh: bool = False) -> RunOutcome:
    """The whole job: train, evaluate, compare, save RUN_DIR/run.json, render the report and publish to trackers."""
    from harness.evals.runner import check_eval_settings
    from harness.reports.trackers import check_trackers

    for name in config.evaluation_names:
        check_eval_settings(config.evaluation_config(name))
    check_trackers(config.tracking)
    check_executor(config)
    started_at = dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    with run_lock(run_dir), noticed_interrupts():
        ctx = prepare_run(config, run_dir)
        inspection = check_leakage(ctx)
        if config.execution.executor == "ray":
            from harness.ray_executor import run_on_ray

            stage_wall_times = run_on_ray(ctx, fresh=fresh)
        else:
            stage_wall_times = run_locally(ctx, fresh=fresh)
        names = config.evaluation_names
        if not is_main_process():
            return RunOutcome(RunRecord(arms=names, stage_wall_times=stage_wall_times, wall_time_s=time.perf_counter() - started), [], [])
        compare_checkpoints(config, run_dir, names)
        record = RunRecord(
            started=started_at.isoformat(timespec="seconds"),
            finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            wall_time_s=round(time.perf_counter() - started, 2),
            arms=names,
            stage_wall_times=stage_wall_times,
            executor=config.execution.executor,
            versions=library_versions(),
            hardware=hardware(),
            determinism=Determinism.current(config.seed),
            data_inspect=inspection,
        )
        record.save(ctx.layout.run_json)
        return RunOutcome(record, *publish_results(config, run_dir))


def compare_checkpoints(config: HarnessConfig, run_dir: Path, names: list[str]) -> None:
    """The paired deltas among `names` and, for a grid, grid.json: everything that compares saved per-sample logs."""
    from harness.evals.runner import add_deltas

    add_deltas(run_dir, config, names)
    if config.plan.is_grid:
        from harness.evals.grid_stats import write_grid_results

        write_grid_results(RunLayout(run_dir), config)


def publish_results(config: HarnessConfig, run_dir: Path) -> tuple[list[str], list[str]]:
    """Render the report and send the results to the configured trackers: (report files, where each tracker got them)."""
    from harness.reports import render_report
    from harness.reports.trackers import publish_run

    report_files = [str(p) for p in render_report(run_dir, config.report_formats)]
    return report_files, publish_run(run_dir, config.tracking)


@dataclass(frozen=True)
class RunOutcome:
    record: RunRecord
    """What was saved as run.json (in a multi-process launch's other processes: the arms and timings only)."""
    report_files: list[str]
    tracked: list[str]


@dataclass(frozen=True)
class Rescored:
    checkpoints: list[str]
    stale: list[str]
    """One line per eval that an older scorer produced and only `harness eval` can score again."""
    report_files: list[str]
    tracked: list[str]


def rescore_run(config: HarnessConfig, run_dir: Path) -> Rescored:
    """Score every saved result of the run again with the current scorers, from its saved replies and item
    values alone (no model under test is loaded), then rebuild its deltas, report and tracker runs."""
    from harness.evals.rescore import rescore_result
    from harness.reports.load import in_lineage_order
    from harness.reports.trackers import check_trackers

    check_trackers(config.tracking)
    with run_lock(run_dir):
        saved = [path.stem for path in sorted(RunLayout(run_dir).results_dir.glob("*.json"))]
        if not saved:
            raise HarnessError(f"{run_dir}: no results/*.json to rescore; run `harness run-all` or `harness eval` first")
        names = in_lineage_order(saved, config.evaluation_names)
        stale = [str(line) for name in names for line in rescore_result(run_dir, name, config.evaluation_config(name))[1]]
        compare_checkpoints(config, run_dir, names)
        report_files, tracked = publish_results(config, run_dir)
    return Rescored(names, stale, report_files, tracked)
