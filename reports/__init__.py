"""Reports: re-render a run's Markdown and self-contained HTML report from its saved results alone.

Reads the run's results, samples, checkpoint manifests, `run.json` and `config.yaml` (paths from
`harness.run.layout`) and writes the report and each trained checkpoint's model card; never imports torch,
transformers, `stages` or `evals`, so re-rendering never loads a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.core.atomic import atomic_write_text
from harness.core.errors import HarnessError
from harness.run.layout import RunLayout
from harness.reports.load import load_run
from harness.reports.model_card import write_model_cards
from harness.reports.render import render_html, render_markdown
from harness.reports.report import build_report

FORMATS = {"md": render_markdown, "html": render_html}


def render_report(run_dir: Path, formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Write RUN_DIR/report.md and/or RUN_DIR/report.html atomically, then every trained checkpoint's model
    card (`checkpoints/<arm>/README.md`); return the paths written.

    Every format is rendered before any file is written, so a format that fails to render leaves the
    previous pair in place rather than a new .md beside an old .html. `formats` may also be one
    comma-separated string (`"md,html"`), as the CLI's --format gives it.
    """
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise HarnessError(f"--format {','.join(formats)}: choose one or more of md, html (e.g. --format md,html)")
    view = load_run(Path(run_dir))
    report = build_report(view)
    rendered = {RunLayout(run_dir).report(name): FORMATS[name](report) for name in dict.fromkeys(formats)}
    for path, text in rendered.items():
        atomic_write_text(path, text)
    return [*rendered, *write_model_cards(view)]


__all__ = ["render_report"]
