"""The Ray executor: every training node and every eval node of the plan runs as a Ray task.

A task asks for its stage's CPUs and GPUs (`execution.resources`) and takes its parent's task result
as an argument, so Ray starts it only once the parent's checkpoint is complete (and, for a child
stage, once the parent's adapter is merged: one merge task per parent, shared by its children). A
task writes only its own node's files, through the same temp-and-rename steps as the local
executor; the driver holds the run lock and writes deltas, grid.json, run.json and the report.

Each task runs in a fresh worker process (`max_calls=1`): it starts with only the GPUs Ray gave it
visible and as many torch threads as its CPUs, and frees its memory when done. A task whose worker
died (killed, out of memory, machine lost) runs again, up to `execution.max_retries` times, after
its node's leftover temporaries are cleared. A user error (bad data, a bad setting) is not retried:
the run fails naming the node, once every node that does not depend on it has finished and been kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import platform
import re
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from harness.core.atomic import remove_leftovers_in, remove_stale_temporaries
from harness.core.console import console, quiet_libraries, shown
from harness.core.errors import HarnessError, first_line
from harness.core.interrupt import raise_if_interrupted
from harness.models.loading import resolve_model, weights_fingerprint
from harness.pipeline import RunContext, evaluate_node, merge_parent, train_arm
from harness.run.config import ExecutionConfig, TaskResources
from harness.run.lineage import BASE

INSTALL = "pip install 'harness[ray]'"
RAY_SOCKET_SUFFIX = len("/ray/session_2026-12-01_00-00-00_000000_4194304/sockets/plasma_store")
"""What Ray appends to its temp folder for its longest socket path; a Unix socket path holds at most 107 bytes."""
POLL_S = 0.5
"""How often the driver looks up from waiting on tasks, to notice Ctrl-C."""


def require_ray() -> None:
    """The one-line error for `--executor ray` where Ray is not installed; else Ray imported, its settings made first."""
    ray_environment()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise HarnessError(f"execution.executor ray needs the ray package; install it with `{INSTALL}`") from None


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Connect to the cluster at `address`, or start a private Ray instance on this machine that ends with the run.

    `local` (not Ray's default lookup) when no address is given: an unrelated Ray instance someone
    else started on this machine is never joined by accident.
    """
    import ray

    try:
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    except ConnectionError as exc:
        raise HarnessError(f"execution.ray_address {address!r}: no Ray cluster there ({first_line(exc)}); start one with `ray start --head`") from exc
    try:
        yield
    finally:
        ray.shutdown()


def ray_environment() -> None:
    """Settings Ray reads from the environment, made before it is imported (any set by the user stay).

    Ray's start-up chatter stays out of the run's output (usage stats off, INFO lines, and the note that
    the private instance uses token authentication, Ray's secure default); its other warnings and task
    output stay. Task output is shown line by line: each line names its node, so Ray's merging of
    similar lines from several workers would hide one node's progress; its colour codes are left out
    where output is no terminal. Workers of a private instance run at the driver's priority, as the
    local executor's work does, not at Ray's default of 15 steps lower, where any other load on the
    machine would starve them. Ray keeps its sockets under `TMPDIR`; where that is too deep for a
    socket path it uses /tmp, its default (the tasks' own scratch stays in `TMPDIR`).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")
    if "RAY_TMPDIR" not in os.environ and len(tempfile.gettempdir()) + RAY_SOCKET_SUFFIX > 107:
        os.environ["RAY_TMPDIR"] = "/tmp"
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not console.is_terminal:
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


def run_on_ray(ctx: RunContext, *, fresh: bool) -> dict[str, float]:
    """Train and evaluate every node of the plan as Ray tasks; return each trained node's wall time.

    Waits for every task; then a failed node is one line naming it (nodes that do not depend on it
    are complete and kept), or, for a bug, the task's traceback.
    """
    import ray

    with ray_session(ctx.config.execution.ray_address):
        graph = submit_plan(ray.put(ctx), ctx, fresh=fresh)
        try:
            outcomes = wait_for(graph)
        except BaseException:
            for ref in graph.tasks:
                ray.cancel(ref, force=True)
            raise
    raise_for_failed_nodes(graph, outcomes)
    return {name: outcomes[ref].wall_time_s for name, ref in graph.trained.items()}


@dataclasses.dataclass
class TaskGraph:
    """The submitted tasks: what each is (for messages) and the task whose result it waits for."""

    execution: ExecutionConfig
    console_width: int
    tasks: dict[Any, str] = dataclasses.field(default_factory=dict)
    """ObjectRef -> "train NODE", "merge NODE" or "eval NODE"."""
    upstream: dict[Any, Any] = dataclasses.field(default_factory=dict)
    """ObjectRef -> the ObjectRef whose result it takes (absent for tasks that start at once)."""
    trained: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Node -> its training task."""

    def submit(self, function: Callable, kind: str, what: str, after: Any | None, *args: Any) -> Any:
        """Start `function(*args, resources, console width, after)` as a task with the resources of `kind`
        (a stage, or `eval`) in a fresh worker, once `after` (an ObjectRef, or None) is done."""
        import ray

        resources: TaskResources = getattr(self.execution.resources, kind)
        options = {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus, "max_retries": self.execution.max_retries}
        task = ray.remote(max_calls=1)(function).options(**options, retry_exceptions=False, name=what)
        ref = task.remote(*args, resources, self.console_width, after)
        self.tasks[ref] = what
        if after is not None:
            self.upstream[ref] = after
        return ref


def submit_plan(shared: Any, ctx: RunContext, *, fresh: bool) -> TaskGraph:
    """One task per training node (after its parent's merge), one merge per parent with children, one eval per
    evaluation (each checkpoint at each eval setting, after its training)."""
    lineage = ctx.config.lineage
    graph, merged = TaskGraph(ctx.config.execution, console.width), {}
    for arm in lineage.training_order():
        start = None
        if arm.parent != BASE:
            parent = lineage.arm(arm.parent)
            if parent.name not in merged:
                merged[parent.name] = graph.submit(merge_task, parent.stage, f"merge {parent.name}", graph.trained[parent.name], shared, parent.name)
            start = merged[parent.name]
        graph.trained[arm.name] = graph.submit(train_task, arm.stage, f"train {arm.name}", start, shared, arm.name, fresh)
    for evaluation in ctx.config.plan.evaluations:
        graph.submit(eval_task, "eval", f"eval {evaluation.name}", graph.trained.get(evaluation.checkpoint), shared, evaluation.name, fresh)
    return graph


def wait_for(graph: TaskGraph) -> dict[Any, Any]:
    """Every task's result or the exception it ended with, keyed by ObjectRef; Ctrl-C is noticed while waiting."""
    import ray

    outcomes: dict[Any, Any] = {}
    pending = list(graph.tasks)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
        raise_if_interrupted()
        for ref in done:
            try:
                outcomes[ref] = ray.get(ref)
            except ray.exceptions.RayError as exc:
                outcomes[ref] = exc
    return outcomes


def raise_for_failed_nodes(graph: TaskGraph, outcomes: dict[Any, Any]) -> None:
    """Raise for the nodes that failed themselves (not because an upstream node did): a bug with its traceback,
    else one line naming every such node and what was kept."""
    import ray

    failed = [ref for ref, outcome in outcomes.items() if isinstance(outcome, Exception)]
    own = [ref for ref in failed if not isinstance(outcomes.get(graph.upstream.get(ref)), Exception)]
    if not own:
        return
    for ref in own:
        cause = getattr(outcomes[ref], "cause", None)
        if isinstance(outcomes[ref], ray.exceptions.RayTaskError) and not isinstance(cause, HarnessError):
            console.print(f"[bold red]{shown(graph.tasks[ref])} failed with an unexpected error[/bold red]")
            raise outcomes[ref]
    reasons = "; ".join(f"{graph.tasks[ref]} failed: {_reason(outcomes[ref])}" for ref in own)
    kept = sum(1 for ref, what in graph.tasks.items() if what.startswith("train ") and not isinstance(outcomes[ref], Exception))
    raise HarnessError(f"{reasons}; {kept} trained node(s) that do not depend on it are complete and kept; fix it and re-run `harness run-all`")


def _reason(error: Exception) -> str:
    cause = getattr(error, "cause", None)
    if isinstance(cause, HarnessError):
        return first_line(cause)
    return f"its worker died on every try ({first_line(error)}); see the Ray logs"


def _take_up(ctx: RunContext, resources: TaskResources, console_width: int) -> RunContext:
    """What a fresh worker sets before a node's work: only its own GPUs visible, its CPUs as torch threads, the
    driver's console width, and this machine's copy of the base model (which must be the driver's weights)."""
    import ray
    import torch

    if not ray.get_gpu_ids():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    torch.set_num_threads(max(1, int(resources.num_cpus)))
    console.width = console_width
    quiet_libraries()
    base_ref = resolve_model(ctx.config.model)
    found = weights_fingerprint(base_ref, ctx.config.model.revision)
    if found != ctx.base_fingerprint:
        raise HarnessError(
            f"{platform.node()}: base model {base_ref} has weights {found}, the driver's {ctx.base_fingerprint}; "
            "give every machine the same model cache (README, multi-node runs)"
        )
    return dataclasses.replace(ctx, base_ref=base_ref)


def train_task(ctx: RunContext, name: str, fresh: bool, resources: TaskResources, width: int, _start: Any) -> Any:
    """Train node `name` (its parent's merge is `_start`, done before this starts); its manifest."""
    ctx = _take_up(ctx, resources, width)
    remove_leftovers_in(ctx.layout.checkpoints_dir, lambda final: final == name)
    return train_arm(ctx, ctx.config.lineage.arm(name), fresh=fresh)


def merge_task(ctx: RunContext, name: str, resources: TaskResources, width: int, _trained: Any) -> str:
    """Merge node `name`'s adapter into full-precision weights for its children; the merged directory."""
    ctx = _take_up(ctx, resources, width)
    own = re.compile(re.escape(name) + r"-[0-9a-f]+")
    remove_leftovers_in(ctx.layout.merged_dir, lambda final: own.fullmatch(final) is not None)
    merged, _ = merge_parent(ctx, ctx.config.lineage.arm(name))
    return merged


def eval_task(ctx: RunContext, name: str, fresh: bool, resources: TaskResources, width: int, _trained: Any) -> float:
    """Evaluation `name` (a checkpoint at an eval setting); its wall time."""
    ctx = _take_up(ctx, resources, width)
    results = ctx.layout.result(name)
    remove_leftovers_in(results.parent, lambda final: final == results.name)
    remove_stale_temporaries(ctx.layout.samples_of(name))
    return evaluate_node(ctx, name, fresh=fresh).wall_time_s
