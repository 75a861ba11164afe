"""The report's two charts as inline SVG: the iteration timeline and the burn-down of open tasks.

Inline SVG, not a script or an image: the file stays one self-contained page that renders offline, in a
mail client's preview or a PR attachment, with nothing to load and nothing to run. Each chart scales with
its ``viewBox``. Every piece of text is escaped here (``esc``): task names and errors come from the agent.
Element classes (``bar``, ``run-boundary``, ``point``) are what the tests count.
"""

from __future__ import annotations

from html import escape

from iteratr.session.state import Iteration
from iteratr.text import duration_text

OUTCOME_COLOURS = {
    "ok": "#2e7d32",
    "failed": "#c62828",
    "timeout": "#ef6c00",
    "interrupted": "#6a1b9a",
    "unfinished": "#90a4ae",
}
_LEFT, _TOP, _BOTTOM = 48, 16, 32  # room for the axis labels
_HEIGHT = 200


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def outcome_of(it: Iteration) -> str:
    return it.outcome if it.outcome in OUTCOME_COLOURS else "unfinished"


def usage_text(it: Iteration, currency: str | None) -> str:
    parts = []
    if it.tokens is not None:
        parts.append(f"{it.tokens:,} tokens" + (" (last call only)" if it.usage_source == "last-call" else ""))
    if it.cost is not None:
        parts.append(f"{it.cost:.4f} {currency or ''}".rstrip())
    return ", ".join(parts)


def _step(count: int) -> float:
    """Horizontal room per iteration: the chart fills about 1000 px, with thin bars (never under 3 px) for a
    long session; a short one keeps to 60 px each rather than a few giant bars."""
    return max(3.0, min(60.0, 1000.0 / max(count, 1)))


def _label_every(count: int) -> int:
    return next(k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**9) if count / k <= 25)


def timeline_svg(iterations: list[Iteration], run_starts: dict[int, str], currency: str | None) -> str:
    """One bar per iteration, its height the iteration's duration and its colour the outcome; a dashed line
    where a run began."""
    if not iterations:
        return '<p class="empty">No iterations yet.</p>'
    step = _step(len(iterations))
    width = _LEFT + step * len(iterations) + 8
    plot = _HEIGHT - _TOP - _BOTTOM
    longest = max((it.duration or 0.0) for it in iterations) or 1.0
    every = _label_every(len(iterations))
    parts = [
        f'<svg class="chart timeline" role="img" aria-label="iterations timeline" viewBox="0 0 {width:.0f} {_HEIGHT}"'
        f' width="{width:.0f}" height="{_HEIGHT}">',
        f'<text x="4" y="{_TOP + 4}" class="axis">{esc(duration_text(longest))}</text>',
        f'<line class="axis-line" x1="{_LEFT - 2}" y1="{_TOP + plot}" x2="{width:.0f}" y2="{_TOP + plot}"/>',
    ]
    for i, it in enumerate(iterations):
        x = _LEFT + i * step
        bar = min(max(1.0, step - 2), 36.0)
        height = max(3.0, plot * (it.duration or 0.0) / longest)
        outcome = outcome_of(it)
        if it.n in run_starts:
            parts.append(
                f'<line class="run-boundary" x1="{x - 0.5:.1f}" y1="{_TOP - 8}"'
                f' x2="{x - 0.5:.1f}" y2="{_TOP + plot + 4}">'
                f"<title>run started {esc(run_starts[it.n])}</title></line>"
            )
        tip = f"#{it.n} {it.kind}: {outcome}, {duration_text(it.duration)}"
        usage = usage_text(it, currency)
        tip += f", {usage}" if usage else ""
        parts.append(
            f'<rect class="bar outcome-{outcome}" data-n="{it.n}" x="{x + (step - bar) / 2:.1f}"'
            f' y="{_TOP + plot - height:.1f}" width="{bar:.1f}" height="{height:.1f}"'
            f' fill="{OUTCOME_COLOURS[outcome]}">'
            f"<title>{esc(tip)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{x + step / 2:.1f}" y="{_HEIGHT - 14}" text-anchor="middle">#{it.n}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def burndown_svg(points: list[tuple[int, int]]) -> str:
    """``(iteration, open tasks after it)`` as a line with one dot per iteration, from the top (most open) down."""
    if not points:
        return '<p class="empty">No iterations yet.</p>'
    step = _step(len(points))
    width = _LEFT + step * len(points) + 8
    plot = _HEIGHT - _TOP - _BOTTOM
    top = max(count for _, count in points) or 1
    every = _label_every(len(points))
    coords = [(_LEFT + (i + 0.5) * step, _TOP + plot * (1 - count / top)) for i, (_, count) in enumerate(points)]
    parts = [
        f'<svg class="chart burndown" role="img" aria-label="open tasks after each iteration"'
        f' viewBox="0 0 {width:.0f} {_HEIGHT}" width="{width:.0f}" height="{_HEIGHT}">',
        f'<text x="4" y="{_TOP + 4}" class="axis">{top}</text>',
        f'<text x="4" y="{_TOP + plot}" class="axis">0</text>',
        f'<line class="axis-line" x1="{_LEFT - 2}" y1="{_TOP + plot}" x2="{width:.0f}" y2="{_TOP + plot}"/>',
        '<polyline class="burn" fill="none" stroke="#1565c0" stroke-width="2" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        + '"/>',
    ]
    for i, ((n, count), (x, y)) in enumerate(zip(points, coords, strict=True)):
        parts.append(
            f'<circle class="point" data-n="{n}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1565c0">'
            f"<title>after #{n}: {count} open</title></circle>"
        )
        if i % every == 0:
            parts.append(f'<text class="axis" x="{x:.1f}" y="{_HEIGHT - 14}" text-anchor="middle">#{n}</text>')
    parts.append("</svg>")
    return "".join(parts)
