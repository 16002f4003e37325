"""The run directory's layout: every path inside `RUN_DIR`, spelled in this one place.

The pipeline, the eval runner, the checkpoint registry, the CLI and the reports all ask a `RunLayout`
for a path instead of joining names themselves, so renaming or moving a file is an edit here alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MANIFEST_FILE = "manifest.json"
"""The manifest inside any checkpoint directory, in a run or not; its presence marks the checkpoint complete."""
MODEL_CARD_FILE = "README.md"
"""The hub-format model card in a trained checkpoint directory; not part of the adapter (its fingerprint covers `adapter_*`)."""


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run directory: `config.yaml`, `run.json`, `grid.json`, `tracking.json`, `checkpoints/<arm>/`, `merged/`,
    `results/<checkpoint>.json`, `samples/<checkpoint>/<eval>.jsonl`, `cache/generations/`, `report.<format>`
    and `partial/<evals>[-limit<N>]/` (a quick look's own `results/` and `samples/`)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def grid_json(self) -> Path:
        return self.root / "grid.json"

    @property
    def tracking_json(self) -> Path:
        """What each experiment tracker last received from this run."""
        return self.root / "tracking.json"

    @property
    def mlflow_store(self) -> Path:
        """MLflow's local file store when no tracking URI is configured."""
        return self.root / "mlruns"

    @property
    def tensorboard_dir(self) -> Path:
        """TensorBoard's event folders when `tracking.tensorboard.log_dir` is unset."""
        return self.root / "tensorboard"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, arm: str) -> Path:
        return self.checkpoints_dir / arm

    def manifest(self, arm: str) -> Path:
        return self.checkpoint(arm) / MANIFEST_FILE

    def model_card(self, arm: str) -> Path:
        return self.checkpoint(arm) / MODEL_CARD_FILE

    @property
    def merged_dir(self) -> Path:
        return self.root / "merged"

    def merged(self, arm: str, adapter_fingerprint: str) -> Path:
        """The cached full-precision merge of an arm's adapter into its start model."""
        return self.merged_dir / f"{arm}-{adapter_fingerprint}"

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    def result(self, checkpoint: str) -> Path:
        return self.results_dir / f"{checkpoint}.json"

    @property
    def samples_dir(self) -> Path:
        return self.root / "samples"

    def samples_of(self, checkpoint: str) -> Path:
        return self.samples_dir / checkpoint

    def samples(self, checkpoint: str, eval_name: str) -> Path:
        return self.samples_of(checkpoint) / f"{eval_name}.jsonl"

    @property
    def generation_cache(self) -> Path:
        return self.root / "cache" / "generations"

    def report(self, extension: str) -> Path:
        return self.root / f"report.{extension}"

    def partial(self, suite: Sequence[str], limit: int | None) -> RunLayout:
        """Where a quick look (fewer evals or items than the saved results) keeps its results and samples."""
        name = "+".join(sorted(suite)) + (f"-limit{limit}" if limit is not None else "")
        return RunLayout(self.root / "partial" / name)
