"""Several processes of one command (`torchrun`, `accelerate launch`): which one writes, and where the rest wait.

Under a launcher every process runs the same command. Training is data-parallel: transformers'
`Trainer` runs DDP through accelerate, so the stage code is unchanged. Everything else belongs to
the main process (global rank 0): the run lock, the run files, merged parents, checkpoint directories,
manifests (hence the loss curves), evals and reports. The other processes train and write nothing,
and wait at a barrier where they need a file the main process writes.

Rank and world size come from the launcher's environment (`RANK`, `WORLD_SIZE`), so asking needs no
process group; the barrier starts accelerate's process group, which the `Trainer` then reuses.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def world_size() -> int:
    """Number of processes the launcher started; 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in global rank 0 and in a plain single-process run."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    """Block until every process reaches this point; a no-op in a single process."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block in the main process first (it may create a cache), then in the others."""
    if not is_main_process():
        wait_for_everyone()
    yield
    if is_main_process():
        wait_for_everyone()
