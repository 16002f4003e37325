"""The `harness` command: run-all, train, eval, report, rescore, data inspect.

User errors (`HarnessError`) print as one line and exit 1; `--debug` shows the traceback. Everything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.run.config import HarnessConfig, load_config
from harness.core.console import console, quiet_libraries, safe_text, shown
from harness.core.errors import HarnessError
from harness.run.layout import RunLayout


class OneLineUsageErrors(typer.Typer):
    """A Typer app whose usage errors (a missing option, `--limit 0`) print as one line and exit 2.

    Typer draws them as a multi-line box; a usage error is a user error, so it reads like the others:
    one line naming the command and the option.
    """

    def __call__(self, *args, **kwargs):
        try:
            code = super().__call__(*args, **{"prog_name": "harness", **kwargs, "standalone_mode": False})
        except typer.TyperException as exc:
            code = _usage_error(exc)
        except typer.Abort:
            code = 1
        sys.exit(code if isinstance(code, int) else 0)


def _usage_error(exc: typer.TyperException) -> int:
    """Print a usage error as one line (a bare command still prints its help); return its exit code."""
    message = exc.format_message().rstrip(".")
    if "\n" in message.strip():
        exc.show()
    else:
        command = exc.ctx.command_path if getattr(exc, "ctx", None) else "harness"
        console.print(f"[bold red]error:[/bold red] {shown(command)}: {shown(message)} (see `{shown(command)} --help`)", soft_wrap=True)
    return exc.exit_code


app = OneLineUsageErrors(
    help="Benchmark sequential fine-tuning (base -> domain -> instruct) with evals you can trust.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect the data a config points at.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config file.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key, e.g. `--set training.domain.epochs=2`.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for user errors too.")]
DEFAULT_CONFIG = Path("configs/default.yaml")


class Executor(str, Enum):
    """`--executor`: the values of `execution.executor`."""

    local = "local"
    ray = "ray"


def user_errors(command: Callable) -> Callable:
    """Print HarnessError as one line with exit code 1; Ctrl-C exits 130 keeping finished work."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug", False)
        try:
            return command(*args, **kwargs)
        except HarnessError as exc:
            if debug:
                raise
            console.print(f"[bold red]error:[/bold red] {shown(exc)}", soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted:[/yellow] finished stages and evals are kept; re-run the same command to resume", soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper


def _config(path: Path, overrides: list[str] | None, output: Path | None = None) -> tuple[HarnessConfig, Path]:
    quiet_libraries()
    config = load_config(path, overrides or [])
    return config, (output or config.run_dir)


def _with_execution(config: HarnessConfig, executor: Executor | None, ray_address: str | None) -> HarnessConfig:
    """The config with `--executor` / `--ray-address` in its `execution` section."""
    given = {"executor": executor.value if executor else None, "ray_address": ray_address}
    execution = config.execution.model_copy(update={key: value for key, value in given.items() if value is not None})
    if execution.ray_address is not None and execution.executor != "ray":
        raise HarnessError("--ray-address (execution.ray_address) names a Ray cluster; add `--executor ray` to run there")
    return config.model_copy(update={"execution": execution})


def _print_paths(title: str, paths: list[Path | str]) -> None:
    console.print(f"[bold]{title}[/bold]")
    for path in paths:
        console.print(f"  {shown(path)}")


def _print_tracked(tracked: list[str]) -> None:
    """Where each tracker got the results, one unbroken line each (a URI or path cut in two cannot be pasted)."""
    if tracked:
        console.print("[bold]Published to[/bold]")
    for line in tracked:
        console.print(f"  {shown(line)}", soft_wrap=True)


def _results_table(run_dir: Path, names: list[str]) -> None:
    from harness.run.results import EvalResult
    from harness.reports.format import direction_arrow, format_ci, format_value, presentations

    layout = RunLayout(run_dir)
    results = {n: EvalResult.load(layout.result(n)) for n in names if layout.result(n).is_file()}
    table = Table(title="Results, value and 95% CI (full report: report.html)", show_lines=True)
    table.add_column("metric", no_wrap=True)
    for name in results:
        table.add_column(shown(name), justify="right")
    for metric, display in presentations(results).items():
        direction = next((r.metrics[metric].higher_is_better for r in results.values() if metric in r.metrics), None)
        row = [f"{display.label} {direction_arrow(direction)}".rstrip()]
        for result in results.values():
            value = result.metrics.get(metric)
            row.append(
                "—" if value is None else f"{format_value(display, value.value)}\n{format_ci(display, value.ci_low, value.ci_high)}"
            )
        table.add_row(*row)
    console.print(table)


@app.command("run-all")
@user_errors
def run_all_command(
    config: ConfigOpt = DEFAULT_CONFIG,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Run directory (default: output_dir/name from the config).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Retrain and re-evaluate everything.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded plan and its estimated cost; write nothing.")] = False,
    executor: Annotated[
        Optional[Executor], typer.Option("--executor", help="`local` (in this process) or `ray` (each node a Ray task); default: execution.executor.")
    ] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to run on (`auto` or HOST:PORT); default: a private local one.")] = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Data -> stages -> evals -> report, resumable.

    Example: `harness run-all --config configs/default.yaml --output runs/demo`;
    on Ray: `harness run-all --config configs/ablation.yaml --executor ray [--ray-address HOST:PORT]`
    """
    from harness.pipeline import run_all

    cfg, run_dir = _config(config, set_, output)
    cfg = _with_execution(cfg, executor, ray_address)
    if dry_run:
        from harness.dry_run import show_plan

        show_plan(cfg)
        return
    outcome = run_all(cfg, run_dir, fresh=fresh)
    _results_table(run_dir, outcome.record.arms)
    console.print(f"Finished in {outcome.record.wall_time_s:.0f} s")
    layout = RunLayout(run_dir)
    _print_paths("Wrote", [layout.results_dir, layout.checkpoints_dir, *outcome.report_files])
    _print_tracked(outcome.tracked)


@app.command("train")
@user_errors
def train_command(
    stage: Annotated[str, typer.Argument(help="`domain` or `instruct`: trains every arm of that stage in the config's `arms` table.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Run directory.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Retrain even if an up-to-date checkpoint exists.")] = False,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Train one stage of the configured run.

    Example: `harness train domain --config configs/tiny.yaml`
    """
    from harness.pipeline import prepare_run, run_lock, train_arm

    if stage not in ("domain", "instruct"):
        raise HarnessError(f"unknown stage {stage!r}; use `domain` or `instruct`")
    cfg, run_dir = _config(config, set_, output)
    arms = [arm for arm in cfg.lineage.training_order() if arm.stage == stage]
    if not arms:
        raise HarnessError(f"{config}: no arm of stage {stage!r} in `arms`; add a row with `stage: {stage}`")
    with run_lock(run_dir):
        ctx = prepare_run(cfg, run_dir)
        for arm in arms:
            train_arm(ctx, arm, fresh=fresh)
    _print_paths("Checkpoints", [RunLayout(run_dir).checkpoint(arm.name) for arm in arms])


@app.command("eval")
@user_errors
def eval_command(
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="`base`, an arm name, a checkpoint/adapter/model dir, or a hub id.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Run directory for results (default from the config).")] = None,
    suite: Annotated[Optional[str], typer.Option("--suite", help="Comma-separated evals, e.g. `perplexity,safety`.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="At most N items per eval (a quick look).")] = None,
    lm_eval_tasks: Annotated[Optional[str], typer.Option("--lm-eval-tasks", help="Comma-separated lm-eval tasks to add (local data only).")] = None,
    lm_eval_include_path: Annotated[Optional[Path], typer.Option("--lm-eval-include-path", help="Folder of extra lm-eval task YAML files.")] = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Evaluate any checkpoint on the configured held-out data.

    Example: `harness eval --checkpoint base --suite safety --limit 20`;
    lm-eval tasks: `harness eval --checkpoint domain --lm-eval-tasks harness_heldout_default --lm-eval-include-path lm_eval_task`
    """
    import harness.evals  # noqa: F401  (registers the evals)
    from harness.evals.runner import add_deltas, evaluate_checkpoint, results_root
    from harness.models.checkpoints import resolve_checkpoint
    from harness.pipeline import run_lock
    from harness.data.run_data import load_run_data

    cfg, run_dir = _config(config, set_, output)
    ckpt = resolve_checkpoint(checkpoint, cfg, run_dir)
    names = [n.strip() for n in suite.split(",") if n.strip()] if suite else cfg.eval.suite
    with run_lock(run_dir):
        out_dir = results_root(run_dir, ckpt.name, names, limit if limit is not None else cfg.eval.limit)
        if out_dir != run_dir:
            console.print(
                f"[yellow]{shown(RunLayout(run_dir).result(ckpt.name))} measures more than this eval; it is kept, and this one "
                f"goes to {shown(out_dir)} (`harness report {shown(out_dir)}` renders it)[/yellow]",
                soft_wrap=True,
            )
        data = load_run_data(cfg)
        tasks = [t.strip() for t in (lm_eval_tasks or "").split(",") if t.strip()]
        result = evaluate_checkpoint(
            cfg, ckpt, data, run_dir, suite=names, limit=limit, lm_eval_tasks=tasks, lm_eval_include_path=lm_eval_include_path,
            results_dir=out_dir,
        )
        add_deltas(out_dir, cfg, [*cfg.evaluation_names, result.checkpoint.name])
    _results_table(out_dir, [result.checkpoint.name])
    written = RunLayout(out_dir)
    _print_paths("Wrote", [written.result(result.checkpoint.name), written.samples_of(result.checkpoint.name)])


@app.command("report")
@user_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with results/.")],
    format: Annotated[str, typer.Option("--format", help="Comma-separated: md, html.")] = "md,html",
    debug: DebugOpt = False,
) -> None:
    """Re-render report.md / report.html from saved results; loads no model.

    Example: `harness report runs/demo --format md,html`
    """
    from harness.pipeline import run_lock
    from harness.reports import render_report
    from harness.reports.trackers import publish_run

    formats = [f.strip() for f in format.split(",") if f.strip()]
    unknown = sorted(set(formats) - {"md", "html"})
    if unknown:
        raise HarnessError(f"--format {format!r}: unknown format {', '.join(unknown)}; use md, html or md,html")
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: no such run directory; pass the folder `harness run-all` wrote")
    with run_lock(run_dir):
        written = render_report(run_dir, formats)
        tracked = publish_run(run_dir)
    _print_paths("Wrote", written)
    _print_tracked(tracked)


@app.command("rescore")
@user_errors
def rescore_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with results/ and samples/.")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="The run's config (default: RUN_DIR/config.yaml).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Score the saved replies again with the current scorers, then rebuild deltas, report and tracker runs; loads no model.

    Example: `harness rescore runs/demo`
    """
    import harness.evals  # noqa: F401  (registers the evals)
    from harness.pipeline import rescore_run

    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: no such run directory; pass the folder `harness run-all` wrote")
    layout = RunLayout(run_dir)
    config_file = config or layout.config
    if not config_file.is_file():
        raise HarnessError(f"{config_file}: not found; pass --config with the config the run was evaluated with")
    cfg, _ = _config(config_file, None)
    rescored = rescore_run(cfg, run_dir)
    _results_table(run_dir, rescored.checkpoints)
    for line in rescored.stale:
        console.print(f"[yellow]{shown(line)}[/yellow]", soft_wrap=True)
    _print_paths("Wrote", [layout.results_dir, layout.samples_dir, *rescored.report_files])
    _print_tracked(rescored.tracked)


@data_app.command("inspect")
@user_errors
def data_inspect_command(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Extraction stats, split sizes and the train/held-out leakage check.

    Exits 1 when an overlap is above its configured threshold.
    Example: `harness data inspect --config configs/default.yaml --json`
    """
    cfg, _ = _config(config, set_)
    from harness.data.inspection import inspect_data
    from harness.models.loading import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model(cfg.model), cfg.model)
    report = inspect_data(cfg, tokenizer)
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        _inspect_tables(report.facts())
    if report.failures:
        raise HarnessError(f"{config}: leakage above threshold: {'; '.join(report.failures)}")


def _inspect_tables(report: dict) -> None:
    """One table of plain values per data source, then one per list of records in it (documents, sections, passages)."""
    for section in ("domain", "counseling", "safety"):
        table = Table(title=section, show_header=False)
        records = {key: value for key, value in report.get(section, {}).items() if _is_records(value)}
        for key, value in report.get(section, {}).items():
            if key not in records:
                table.add_row(key, Text(safe_text(json.dumps(value) if isinstance(value, (dict, list)) else str(value))))
        console.print(table)
        for key, value in records.items():
            _records_table(f"{section} {key.replace('_', ' ')}", value)


def _is_records(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _records_table(title: str, records: list[dict]) -> None:
    """One row per record; the texts come from the documents, so they are shown as plain text, not markup."""
    columns = list(dict.fromkeys(key for record in records for key in record))
    table = Table(title=title)
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right" if isinstance(records[0].get(column), (int, float)) else "left")
    for record in records:
        table.add_row(*(Text(safe_text(str(record.get(column, "")))) for column in columns))
    console.print(table)


@app.command("export-lm-eval")
@user_errors
def export_lm_eval_command(
    config: ConfigOpt = DEFAULT_CONFIG,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the task YAML and its JSONL data.")] = Path("lm_eval_task"),
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Export the held-out perplexity eval as an lm-eval task (YAML + local JSONL).

    `lm_eval --include_path DIR --tasks TASK --model hf --model_args pretrained=...,peft=...,max_length=N`
    then reproduces `heldout_bits_per_byte` (with `eval.perplexity.stride` equal to `max_length`).
    Example: `harness export-lm-eval --config runs/demo/config.yaml --output lm_eval_task`
    """
    from harness.evals.lm_eval_export import export_lm_eval_task, lm_eval_cli_arguments

    cfg, _ = _config(config, set_)
    yaml_file = export_lm_eval_task(cfg, output)
    example = lm_eval_cli_arguments(yaml_file, pretrained="MODEL_DIR", peft="ADAPTER_DIR")
    _print_paths("Wrote", [yaml_file, yaml_file.with_suffix(".jsonl")])
    console.print(f"Run: lm_eval {escape(' '.join(example))}", soft_wrap=True)
