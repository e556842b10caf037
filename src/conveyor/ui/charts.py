"""Charts drawn on the server as SVG: no script, nothing fetched, every label escaped."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from markupsafe import Markup

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from conveyor.release import HistoryEntry
    from conveyor.ui.reading import MetricSeries

WIDTH, HEIGHT, PAD, LEFT = 640, 220, 40, 80


def _number(value: float) -> str:
    return f"{value:.6g}"


def metric_chart(series: MetricSeries) -> Markup:
    """A gate metric across builds, oldest left; the champion's points ringed and labelled."""
    points = series.points
    values = [value for _, value, _ in points]
    low, high = min(values), max(values)
    if high == low:
        spread = abs(high) * 0.1 or 1.0
        low, high = low - spread, high + spread
    span_x = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return LEFT + (WIDTH - LEFT - PAD) * (i / span_x if len(points) > 1 else 0.5)

    def y(value: float) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value - low) / (high - low)

    title = escape(series.metric)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{title} across builds">',
        f"<title>{title} across builds</title>",
        f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{PAD}" x2="{LEFT}" y2="{HEIGHT - PAD}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{y(high) + 4:.1f}" text-anchor="end">{_number(high)}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{y(low) + 4:.1f}" text-anchor="end">{_number(low)}</text>',
    ]
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v, _) in enumerate(points))
    parts.append(f'<polyline class="series" points="{line}"/>')
    for i, (label, value, champion) in enumerate(points):
        cx, cy = x(i), y(value)
        kind = "champion" if champion else "point"
        parts.append(
            f'<circle class="{kind}" cx="{cx:.1f}" cy="{cy:.1f}" r="{7 if champion else 4}">'
            f"<title>{escape(label)}: {_number(value)}{' (champion)' if champion else ''}</title></circle>"
            f'<text class="value" x="{cx + 10:.1f}" y="{cy + 4:.1f}">{_number(value)}</text>'
        )
        parts.append(
            f'<text class="tick" x="{cx:.1f}" y="{HEIGHT - PAD + 16}" text-anchor="middle">{escape(label)}</text>'
        )
        if champion:
            parts.append(f'<text class="mark" x="{cx:.1f}" y="{cy - 12:.1f}" text-anchor="middle">champion</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 -- every text in the SVG went through escape(); the rest are numbers


def timeline(entries: Sequence[HistoryEntry], now: datetime) -> Markup:
    """What was live in a stage over time: one bar per release, from live to superseded (or now)."""
    if not entries:
        return Markup("")
    start = min(e.live_from for e in entries)
    end = max(now, *(e.live_until or now for e in entries))
    total = max((end - start).total_seconds(), 1.0)
    row, left, right = 26, 150, 20
    height = row * len(entries) + 30

    def x(moment: datetime) -> float:
        return left + (WIDTH - left - right) * (moment - start).total_seconds() / total

    parts = [
        f'<svg class="timeline" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg" aria-label="releases live over time">',
        "<title>releases live over time</title>",
    ]
    for i, entry in enumerate(entries):
        top = 10 + i * row
        begin, finish = x(entry.live_from), x(entry.live_until or now)
        label = escape(f"r{entry.release} {entry.model.label()}")
        kind = "bar live" if entry.live_until is None else "bar"
        until = entry.live_until.isoformat(timespec="seconds") if entry.live_until else "now"
        parts.append(f'<text class="tick" x="{left - 8}" y="{top + 14}" text-anchor="end">{label}</text>')
        parts.append(
            f'<rect class="{kind}" x="{begin:.1f}" y="{top}" width="{max(finish - begin, 3):.1f}" height="{row - 8}">'
            f"<title>{label}: {entry.live_from.isoformat(timespec='seconds')} → {until}</title></rect>"
        )
    stamp = f'<text class="tick" x="{left}" y="{height - 4}">{escape(start.isoformat(timespec="minutes"))}</text>'
    parts.append(stamp)
    parts.append(
        f'<text class="tick" x="{WIDTH - right}" y="{height - 4}" text-anchor="end">'
        f"{escape(end.isoformat(timespec='minutes'))}</text></svg>"
    )
    return Markup("".join(parts))  # noqa: S704 -- every text in the SVG went through escape(); the rest are numbers
