"""The report's charts as inline SVG strings: metric bars with CI whiskers, loss curves, per-section perplexity.

Each function takes plain numbers (already read from results, manifests and sample logs) and
returns one self-contained `<svg>` element. Text inside goes through `svg.text()`, so the strings
are safe to inline as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.run.manifest import Manifest
from harness.run.results import EvalResult
from harness.reports.format import direction_arrow, format_ci, format_value, presentations
from harness.reports.sections import SectionRow
from harness.reports.summary import all_metrics
from harness.reports.svg import Frame, checkpoint_color, legend, nice_ticks, open_svg, plottable, text, title, y_axis


def metric_bars(metric: str, results: dict[str, EvalResult]) -> str | None:
    """Bars (one per checkpoint, in `results` order) with 95% CI whiskers for one metric; None if no checkpoint has it."""
    present = [(i, name, r.metrics[metric]) for i, (name, r) in enumerate(results.items()) if metric in r.metrics]
    points = [(i, name, m) for i, name, m in present if plottable(m.value)]
    if not points:
        return None
    display = presentations(results)[metric]
    highs = [max(m.value, m.ci_high) for _, _, m in points if plottable(m.ci_high)] + [m.value for _, _, m in points]
    lows = [min(m.value, m.ci_low) for _, _, m in points if plottable(m.ci_low)] + [m.value for _, _, m in points]
    ticks = nice_ticks(min(0.0, min(lows)), max(highs), 4)
    frame = Frame(250, 170, 44, 8, 28, 14, 0, len(results), ticks[0], ticks[-1])
    label = f"{display.label} {direction_arrow(points[0][2].higher_is_better)}".strip()
    parts = [open_svg(frame.width, frame.height, label), title(6, 16, label), y_axis(frame, ticks, display.percent)]
    band = (frame.width - frame.left - frame.right) / len(results)
    baseline = frame.y(max(ticks[0], 0.0))
    for index, name, value in points:
        x0, y = frame.left + band * index + band * 0.18, frame.y(value.value)
        tooltip = f"{name}: {format_value(display, value.value)} {format_ci(display, value.ci_low, value.ci_high)} (n={value.n})"
        parts.append(
            f'<g><title>{text(tooltip)}</title><rect x="{x0:.1f}" y="{min(y, baseline):.1f}" width="{band * 0.64:.1f}" '
            f'height="{abs(baseline - y):.1f}" fill="{checkpoint_color(name, index)}"/>'
        )
        if plottable(value.ci_low) and plottable(value.ci_high):
            cx, lo, hi = x0 + band * 0.32, frame.y(value.ci_low), frame.y(value.ci_high)
            parts.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{lo:.1f}" y2="{hi:.1f}" stroke="#222" stroke-width="1.2"/>'
                f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{lo:.1f}" y2="{lo:.1f}" stroke="#222"/>'
                f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{hi:.1f}" y2="{hi:.1f}" stroke="#222"/>'
            )
        parts.append("</g>")
    for index, name, value in present:
        if not plottable(value.value):
            x = frame.left + band * (index + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{baseline - 4:.1f}" text-anchor="middle" fill="#b00">'
                f'{text(f"{format_value(display, value.value)} (off scale)")}<title>{text(name)}</title></text>'
            )
    right = frame.width - frame.right
    parts.append(f'<line x1="{frame.left}" x2="{right}" y1="{baseline:.1f}" y2="{baseline:.1f}" stroke="#999"/>')
    return "".join(parts) + "</svg>"


def metric_bar_charts(results: dict[str, EvalResult]) -> list[str]:
    return [svg for metric in all_metrics(results) if (svg := metric_bars(metric, results)) is not None]


def checkpoint_legend(checkpoints: list[str]) -> str:
    entries = [(name, checkpoint_color(name, i)) for i, name in enumerate(checkpoints)]
    width = int(sum(28 + 6.5 * len(name) for name in checkpoints)) + 8
    return open_svg(width, 22, "Checkpoint colours") + legend(entries, 4, 15) + "</svg>"


def _polyline(frame: Frame, points: Sequence[tuple[float, float]], color: str, dashed: bool = False) -> str:
    coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points)
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'


def _dots(frame: Frame, points: Sequence[tuple[float, float]], color: str, tooltips: list[str]) -> str:
    return "".join(
        f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="3" fill="{color}"><title>{text(tip)}</title></circle>'
        for (x, y), tip in zip(points, tooltips)
    )


def loss_curve(arm: str, manifest: Manifest, index: int) -> str | None:
    """Training loss per logged step (solid) and held-out loss per evaluation (dashed, dots) for one stage."""
    train = [(p.step, p.loss) for p in manifest.train_loss if plottable(p.loss)]
    held = [(p.step, p.loss) for p in manifest.eval_loss if plottable(p.loss)]
    if not train and not held:
        return None
    every = train + held
    ticks = nice_ticks(min(y for _, y in every), max(y for _, y in every), 4)
    frame = Frame(380, 210, 44, 12, 30, 30, min(x for x, _ in every), max(x for x, _ in every) or 1, ticks[0], ticks[-1])
    color = checkpoint_color(arm, index)
    label = f"{arm}: {manifest.stage} stage loss"
    parts = [open_svg(frame.width, frame.height, label), title(6, 16, label), y_axis(frame, ticks)]
    for step in nice_ticks(frame.x_min, frame.x_max, 5):
        if frame.x_min <= step <= frame.x_max:
            x = frame.x(step)
            parts.append(f'<text x="{x:.1f}" y="{frame.height - 16}" text-anchor="middle" fill="#555">{step:g}</text>')
    parts.append(f'<text x="{frame.width - frame.right}" y="{frame.height - 3}" text-anchor="end" fill="#555">step</text>')
    if train:
        parts.append(_polyline(frame, train, color))
    if held:
        tips = [f"eval loss {y:.3f} at step {x:g}" for x, y in held]
        parts.append(_polyline(frame, held, "#222", dashed=True) + _dots(frame, held, "#222", tips))
    parts.append(legend([("train", color), ("eval", "#222")], frame.left + 4, frame.height - 3, dashed={"eval"}))
    return "".join(parts) + "</svg>"


def loss_charts(manifests: dict[str, Manifest]) -> list[str]:
    charts = [loss_curve(arm, m, i) for i, (arm, m) in enumerate(manifests.items()) if m.stage is not None]
    return [chart for chart in charts if chart is not None]


def section_chart(rows: list[SectionRow], checkpoints: list[str]) -> str | None:
    """Perplexity per held-out section (x: S1..Sn, titles in the table below the chart), one line per checkpoint."""
    values = [v for row in rows for v in row.perplexity.values() if plottable(v)]
    if not rows or not values:
        return None
    ticks = nice_ticks(min(values), max(values), 5)
    width = max(420, min(900, 60 + 48 * len(rows)))
    frame = Frame(width, 250, 48, 16, 30, 40, 0.5, len(rows) + 0.5, ticks[0], ticks[-1])
    parts = [open_svg(width, frame.height, "Held-out perplexity per section"), title(6, 16, "Held-out perplexity per section ↓"),
             y_axis(frame, ticks)]
    for number in range(1, len(rows) + 1):
        parts.append(f'<text x="{frame.x(number):.1f}" y="{frame.height - 24}" text-anchor="middle" fill="#555">S{number}</text>')
    for index, name in enumerate(checkpoints):
        points = [(n, row.perplexity[name]) for n, row in enumerate(rows, 1) if plottable(row.perplexity.get(name, math.nan))]
        if points:
            color = checkpoint_color(name, index)
            tips = [f"{name}: S{n} perplexity {y:.2f}" for n, y in points]
            parts.append(_polyline(frame, points, color) + _dots(frame, points, color, tips))
    entries = [(name, checkpoint_color(name, i)) for i, name in enumerate(checkpoints)]
    parts.append(legend(entries, frame.left, frame.height - 5))
    return "".join(parts) + "</svg>"
