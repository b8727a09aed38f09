"""
Charts drawn on the server as inline SVG: no script, no library, nothing fetched. Every
label and title is escaped; the SVG scales to its container through its viewBox.
"""

from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

INBOUND_COLOUR = "#417690"  # the admin's own blue
OUTBOUND_COLOUR = "#79aec8"


@dataclass(frozen=True)
class Column:
    """One slot of a grouped column chart: a label under it and one value per series."""

    label: str  # "" for no tick label
    title: str  # shown on hover
    values: tuple[int, ...]


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... not below `value`: a round top for the axis."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def column_chart_svg(
    columns: list[Column],
    *,
    series: tuple[tuple[str, str], ...] = (("inbound", INBOUND_COLOUR), ("outbound", OUTBOUND_COLOUR)),
    title: str,
    width: int = 720,
    height: int = 220,
) -> SafeString:
    """
    A grouped column chart: per column one bar per series, a y axis with a round top and
    its mid line, the columns' labels below and a legend. `series` is (name, colour) each.
    """
    left, right, top, bottom = 36, 8, 24, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_ceiling(max((v for column in columns for v in column.values), default=0) or 1)
    slot = plot_w / max(len(columns), 1)
    bar_w = max(slot * 0.8 / max(len(series), 1), 0.5)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'class="console-chart" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        value = peak * fraction
        label = f"{value:g}"
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">{escape(label)}</text>')
    for index, column in enumerate(columns):
        x0 = left + index * slot + slot * 0.1
        for position, value in enumerate(column.values):
            name, colour = series[position]
            bar_h = plot_h * value / peak
            x = x0 + position * bar_w
            y = top + plot_h - bar_h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{bar_h:.1f}" fill="{colour}">'
                f"<title>{escape(column.title)}: {value} {escape(name)}</title></rect>"
            )
        if column.label:
            cx = left + index * slot + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{height - bottom + 14}" text-anchor="middle" class="axis">'
                f"{escape(column.label)}</text>"
            )
    legend_x = left
    for name, colour in series:
        parts.append(f'<rect x="{legend_x}" y="6" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="15" class="axis">{escape(name)}</text>')
        legend_x += 14 + 8 * len(name) + 16
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every text inside is escaped above)


def hourly_columns(hours, *, window: str) -> list[Column]:
    """The dashboard's hours as columns: every 3rd hour labelled over 24 hours, each midnight over 7 days."""
    columns = []
    for count in hours:
        start = count.hour
        if window == "7d":
            label = start.strftime("%a %d") if start.hour == 0 else ""
        else:
            label = start.strftime("%H:00") if start.hour % 3 == 0 else ""
        title = start.strftime("%Y-%m-%d %H:00")
        columns.append(Column(label=label, title=title, values=(count.inbound, count.outbound)))
    return columns
