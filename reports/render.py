"""Jinja2 environments and the two renderers: the same `Report` laid out as Markdown and as one HTML file.

The HTML environment autoescapes everything; the only markup passed through is the SVG the
report drew itself (`harness.reports.plots`, whose text is escaped at construction). The Markdown
environment escapes every printed value by default (`harness.reports.markdown.finalize`), so model and
dataset text cannot inject HTML, links or table breaks into the .md file either.
"""

from __future__ import annotations

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


def render_markdown(report: Report) -> str:
    return markdown_environment().get_template("report.md.j2").render(report=report)


def render_html(report: Report) -> str:
    charts = {
        "legend": Markup(plots.checkpoint_legend(report.checkpoints)),
        "metrics": [Markup(svg) for svg in plots.metric_bar_charts(report.results)],
        "losses": [Markup(svg) for svg in plots.loss_charts(report.manifests)],
        "sections": Markup(svg) if (svg := plots.section_chart(report.section_rows, report.checkpoints)) else None,
    }
    return html_environment().get_template("report.html.j2").render(report=report, charts=charts)
