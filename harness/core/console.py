"""The rich console every command prints through, and the filters for library noise.

Per-call warnings from bitsandbytes/transformers would print thousands of identical lines during
training and generation; they are silenced here, at the source, once per process.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, highlight=False)

_NOISY_WARNINGS = [
    r"MatMul8bitLt: inputs will be cast",
    r".*`use_cache=True` is incompatible with gradient checkpointing",
    r".*torch.utils.checkpoint: the use_reentrant parameter",
    r".*None of the inputs have requires_grad=True",
    r".*Setting `pad_token_id` to `eos_token_id`",
    r".*The attention mask and the pad token id were not set",
    r".*generation flags are not valid and may be ignored",
    r".*`is_gradient_checkpointing` is deprecated",
]


def quiet_libraries() -> None:
    """Silence warnings that repeat per call; keep everything else visible."""
    for pattern in _NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers", "peft", "bitsandbytes", "datasets", "trl", "accelerate", "lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    try:
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    except ImportError:
        pass


def progress() -> Progress:
    """A progress bar with count, elapsed time and ETA, printed to the shared console."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor movement, screen clearing
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC (window title, hyperlinks), DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]"  # any other escape sequence, including the opener of an unterminated string
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # remaining C0 controls but tab and newline, DEL, C1 controls (8-bit CSI)
)


def safe_text(text: str) -> str:
    """Untrusted text (model output, dataset rows) with terminal escape sequences and control characters
    removed, so printing it cannot recolour, retitle, clear or move the user's terminal."""
    return _ANSI.sub("", text)


def shown(value: object) -> str:
    """A user- or data-given value (a path, a checkpoint name) ready to put inside rich markup: no
    escape sequences, and its square brackets printed as text rather than read as markup."""
    return escape(safe_text(str(value)))
