"""Publish a run to Weights & Biases: one run per checkpoint (`job_type="eval"`) and one run that keeps the
report files (`job_type="report"`), all in `group=` the harness run's name.

Offline by default (`tracking.wandb.mode`): runs are written under `<dir>/wandb/` with no account and no
network, and `wandb sync` uploads them later. The files are copied into the report run's own folder,
so a later re-render of the report does not change what that run holds.
"""

from __future__ import annotations

import shutil

from harness.core.errors import HarnessError, first_line
from harness.reports.trackers.content import TrackedRun
from harness.run.config import WandbTracking


def publish(run: TrackedRun, settings: WandbTracking) -> str:
    import wandb

    directory = settings.dir or run.run_dir
    directory.mkdir(parents=True, exist_ok=True)
    quiet = wandb.Settings(silent=True, console="off", x_disable_stats=True, disable_git=True, save_code=False)

    def start(name: str, job_type: str, config: dict):
        return wandb.init(
            project=settings.project, entity=settings.entity, mode=settings.mode, dir=str(directory), group=run.name,
            name=name, job_type=job_type, config=config, settings=quiet,
        )

    try:
        for checkpoint in run.checkpoints:
            with start(checkpoint.name, "eval", {"checkpoint": checkpoint.params, "harness": run.config}) as tracked:
                tracked.log(checkpoint.metrics, step=0)
        with start(f"{run.name} report", "report", {"harness": run.config}) as tracked:
            for path in run.files:
                kept = shutil.copy2(path, tracked.dir)
                tracked.save(kept, base_path=tracked.dir, policy="now")
    except wandb.Error as exc:
        raise HarnessError(f"tracking.wandb: {first_line(exc)}; check tracking.wandb (mode offline needs no login)") from exc
    finally:
        wandb.teardown()  # waits until W&B's service has written (or uploaded) every run: finish() alone does not
    return f"group {run.name!r} in project {settings.project!r} ({settings.mode}, {directory / 'wandb'})"
