"""What an eval gets to work with: one loaded checkpoint and the shared, already-split data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.evals.generate import Generator
    from harness.run.config import HarnessConfig
    from harness.data.conversations import Conversation
    from harness.data.corpus import Section
    from harness.data.safety_prompts import SafetyPrompt


@dataclass
class EvalContext:
    config: HarnessConfig
    model: Any
    """A transformers causal LM, possibly a PeftModel, already in eval mode."""
    tokenizer: Any
    model_fingerprint: str
    heldout_sections: list[Section]
    counseling_test: list[Conversation]
    safety_prompts: list[SafetyPrompt]
    generator: Generator
    """Batched, cached greedy generation for this model (see evals/generate.py)."""
    limit: int | None = None
    """At most this many items per eval (a quick look); None means all."""
    work_dir: Path | None = None
