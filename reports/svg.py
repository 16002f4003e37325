"""Hand-written SVG primitives for the report's charts: axes, ticks, escaping. No plotting library.

Every piece of text that enters an SVG string goes through `text()`, which XML-escapes it, so a
chart can be inlined into the HTML as markup without letting any label become markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from harness.run.lineage import BASE

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#9d755d", "#bab0ac")
BASE_COLOR = "#8c8c8c"
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


def text(value: object) -> str:
    """XML-escaped text for an SVG text node or attribute value."""
    return escape(str(value), quote=True)


def checkpoint_color(name: str, index: int) -> str:
    """Grey for base; the arms take the palette in checkpoint order (`index` counts base as 0)."""
    return BASE_COLOR if name == BASE else PALETTE[(index - 1) % len(PALETTE)]


PLOT_LIMIT = 1e12
"""The largest magnitude a chart draws. A value beyond it (or NaN, infinite) is left off the axis and
written as text in its place: an axis stretched to 1e308 would flatten every other bar, and tick
arithmetic near the float maximum overflows."""


def plottable(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= PLOT_LIMIT


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [low, high].

    Ticks are counted as whole multiples of the step, so there are at most `count` + 3 of them however
    the step compares with the magnitude of the values (adding a step too small to change a large
    value would never reach `high`). A span of zero at zero (an all-zero rate) gives [0, 1].
    """
    if not (plottable(low) and plottable(high)):
        return [0.0, 1.0]
    if high <= low:
        pad = abs(low) * 0.1
        low, high = (low - pad, high + pad) if pad else (low, low + 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = sorted({round(index * step, 12) for index in range(first, last + 1)})
    return ticks if len(ticks) > 1 else [first * step, (first + 1) * step]


def tick_label(value: float, step: float, percent: bool = False) -> str:
    scaled, scaled_step = (value * 100, step * 100) if percent else (value, step)
    decimals = max(0, -math.floor(math.log10(scaled_step) + 1e-9)) if scaled_step > 0 else 0
    if abs(scaled_step * 10**decimals - round(scaled_step * 10**decimals)) > 1e-6:
        decimals += 1
    return f"{scaled:.{decimals}f}{'%' if percent else ''}"


@dataclass(frozen=True)
class Frame:
    """A plotting area inside an SVG of `width` x `height`, mapping data coordinates to pixels."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    x_min: float
    x_max: float
    y_min: float
    y_max: float

    def x(self, value: float) -> float:
        span = (self.x_max - self.x_min) or 1.0
        return self.left + (value - self.x_min) / span * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        span = (self.y_max - self.y_min) or 1.0
        return self.height - self.bottom - (value - self.y_min) / span * (self.height - self.top - self.bottom)


def open_svg(width: int, height: int, label: str) -> str:
    """Inline-SVG opening tag (no xmlns: HTML5 parsers place <svg> in the SVG namespace themselves)."""
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{text(label)}" {FONT} font-size="11"><title>{text(label)}</title>'
    )


def y_axis(frame: Frame, ticks: list[float], percent: bool = False) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    parts = []
    for tick in ticks:
        y, label = frame.y(tick), text(tick_label(tick, step, percent))
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>'
            f'<text x="{frame.left - 4}" y="{y + 3.5:.1f}" text-anchor="end" fill="#555">{label}</text>'
        )
    parts.append(
        f'<line x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" y2="{frame.height - frame.bottom}" stroke="#999"/>'
    )
    return "".join(parts)


def title(x: float, y: float, label: str, size: int = 12) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="600" fill="#222">{text(label)}</text>'


def legend(entries: list[tuple[str, str]], x: float, y: float, dashed: set[str] | None = None) -> str:
    """A row of colour swatches with labels; entries are (label, colour)."""
    parts, cursor = [], x
    for label, color in entries:
        dash = ' stroke-dasharray="4 3"' if dashed and label in dashed else ""
        line_y = y - 4
        parts.append(
            f'<line x1="{cursor:.1f}" x2="{cursor + 16:.1f}" y1="{line_y:.1f}" y2="{line_y:.1f}" stroke="{color}"'
            f' stroke-width="3"{dash}/>'
            f'<text x="{cursor + 20:.1f}" y="{y:.1f}" fill="#333">{text(label)}</text>'
        )
        cursor += 28 + 6.5 * len(label)
    return "".join(parts)
