"""Jinja2 environments and the two renderers: the same `Report` laid out as Markdown and as one HTML file.

The HTML environment autoescapes everything; the only markup passed through is the SVG the
report drew itself (`harness.reports.plots`, whose text is escaped at construction). The Markdown
environment escapes every printed value by default (`harness.reports.markdown.finalize`), so model and
dataset text cannot inject HTML, links or table breaks into the .md file either.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness.reports import markdown, plots
from harness.reports.report import Report

TEMPLATES = Path(__file__).parent / "templates"


@cache
def html_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )


@cache
def markdown_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=False,
        finalize=markdown.finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["quote"] = markdown.quote_block
    env.filters["code"] = markdown.code_block
    return env


_HIDDEN_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Control characters but tab and line ends, and the bidirectional marks, embeddings, overrides and isolates."""


def _visible(character: str) -> str:
    code = ord(character)
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else f"‹U+{code:04X}›"


def visible_controls(text: str) -> str:
    """A rendered report with every control or bidi character shown as a visible mark (ESC as ␛, U+202E as
    ‹U+202E›). Model and dataset text may carry them: in the file they would ring, recolour or clear a
    terminal that prints it, or reorder the text around them in a viewer; a report shows what the text held."""
    return _HIDDEN_CONTROLS.sub(lambda m: _visible(m.group(0)), text)


def render_markdown(report: Report) -> str:
    return visible_controls(markdown_environment().get_template("report.md.j2").render(report=report))


def render_html(report: Report) -> str:
    charts = {
        "legend": Markup(plots.checkpoint_legend(report.checkpoints)),
        "metrics": [Markup(svg) for svg in plots.metric_bar_charts(report.results)],
        "losses": [Markup(svg) for svg in plots.loss_charts(report.manifests)],
        "sections": Markup(svg) if (svg := plots.section_chart(report.section_rows, report.checkpoints)) else None,
    }
    return visible_controls(html_environment().get_template("report.html.j2").render(report=report, charts=charts))
