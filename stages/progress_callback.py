"""A `TrainerCallback` that drives the stage's rich progress bar and records its loss history.

It replaces transformers' own printing: training loss comes in through `on_log`, and the held-out
loss is measured at the end of every epoch (and once before training, by the stage) with the same
token-weighted function, so all points of the curve are comparable. Time spent evaluating is kept
out of the tokens/s figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.progress import Progress, TaskID

from harness.core.console import quiet_libraries
from harness.core.interrupt import raise_if_interrupted
from harness.run.manifest import LossPoint

quiet_libraries()  # importing transformers' trainer imports bitsandbytes, which logs a warning at import time
from transformers import TrainerCallback  # noqa: E402


class TrainingProgress(TrainerCallback):
    def __init__(self, bar: Progress, description: str, evaluate: Callable[[], float]) -> None:
        self.bar = bar
        self.description = description
        self.evaluate = evaluate
        self.task: TaskID | None = None
        self.train_loss: list[LossPoint] = []
        self.eval_loss: list[LossPoint] = []
        self.tokens = 0
        self.started = 0.0
        self.finished = 0.0
        self.eval_seconds = 0.0

    @property
    def train_seconds(self) -> float:
        """Wall time of the training loop without the held-out evaluations inside it."""
        end = self.finished or time.perf_counter()
        return max(end - self.started - self.eval_seconds, 1e-9)

    def _status(self) -> str:
        parts = []
        if self.train_loss:
            parts.append(f"loss {self.train_loss[-1].loss:.3f}")
        if self.eval_loss:
            parts.append(f"held-out {self.eval_loss[-1].loss:.3f}")
        if self.tokens:
            parts.append(f"{self.tokens / self.train_seconds:,.0f} tok/s")
        return " · ".join(parts)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()
        self.task = self.bar.add_task(self.description, total=state.max_steps, status=self._status())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        raise_if_interrupted()
        self.tokens = int(state.num_input_tokens_seen)
        self.bar.update(self.task, completed=state.global_step, status=self._status())

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.train_loss.append(LossPoint(step=state.global_step, loss=float(logs["loss"]), epoch=state.epoch))
            self.bar.update(self.task, status=self._status())

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.eval_loss and self.eval_loss[-1].step == state.global_step:
            return
        self.bar.update(self.task, status=f"{self._status()} · evaluating held-out ...")
        began = time.perf_counter()
        loss = self.evaluate()
        self.eval_seconds += time.perf_counter() - began
        self.eval_loss.append(LossPoint(step=state.global_step, loss=loss, epoch=state.epoch))
        self.bar.update(self.task, status=self._status())

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.finished = time.perf_counter()
        self.tokens = int(state.num_input_tokens_seen)
        self.bar.update(self.task, completed=state.global_step, status=self._status())
