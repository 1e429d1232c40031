"""Server-side SVG charts: readable without JavaScript, each with a text alternative."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline(values: Sequence[int], *, label: str, width: int = 120, height: int = 28) -> Markup:
    """A line of ``values`` (oldest first) scaled to its own maximum."""
    top = max(values, default=0) or 1
    step = width / max(len(values) - 1, 1)
    pad = 2
    points = " ".join(
        f"{_fmt(i * step)},{_fmt(pad + (height - 2 * pad) * (1 - v / top))}" for i, v in enumerate(values)
    )
    text = escape(label)
    return Markup(  # noqa: S704 - the label is escaped; the rest are numbers
        f'<svg class="sparkline" role="img" aria-label="{text}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{text}</title>"
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/></svg>'
    )


def bar_chart(days: Sequence[str], values: Sequence[int], *, title: str) -> Markup:
    """One bar per day (oldest first), the maximum on the axis, every bar titled with its
    day and value; ``aria-label`` sums it up for a screen reader."""
    width, height, left, bottom, top_pad = 600, 160, 44, 22, 10
    plot_w, plot_h = width - left - 4, height - bottom - top_pad
    top = max(values, default=0)
    scale = top or 1
    slot = plot_w / max(len(values), 1)
    bars = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        h = plot_h * value / scale
        x = left + i * slot + slot * 0.15
        y = top_pad + plot_h - h
        bars.append(
            f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(slot * 0.7)}" height="{_fmt(max(h, 0))}">'
            f"<title>{escape(day)}: {value}</title></rect>"
        )
    total = sum(values)
    summary = escape(
        f"{title}, {days[0]} to {days[-1]}: {total} in all, at most {top} a day, {values[-1]} today"
        if days
        else title
    )
    base_y = top_pad + plot_h
    axis = (
        f'<line x1="{left}" y1="{base_y}" x2="{width - 4}" y2="{base_y}" stroke="currentColor"/>'
        f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end">{top}</text>'
        f'<text x="{left - 6}" y="{base_y}" text-anchor="end">0</text>'
    )
    if days:
        axis += (
            f'<text x="{left}" y="{height - 6}">{escape(days[0])}</text>'
            f'<text x="{width - 4}" y="{height - 6}" text-anchor="end">{escape(days[-1])}</text>'
        )
    return Markup(  # noqa: S704 - day names and the title are escaped; the rest are numbers
        f'<svg class="chart" role="img" aria-label="{summary}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{summary}</title>{axis}'
        f'<g class="bars">{"".join(bars)}</g></svg>'
    )
