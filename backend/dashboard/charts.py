"""Weekly usage charts as inline SVG, drawn on the server (no JavaScript, no CDN).

A few hundred bytes of hand-written SVG per chart: bars on round-number guides, the week labels
under them and each bar named (``<title>``) with its series, week and value. It used to be
pygal, ~12 ms a chart on an idle core, three per resident page (docs/scale.md); this takes
well under a millisecond, so a page of charts costs about what a page of text does.

Each chart comes with its numbers (a table the template puts in a ``<details>``), so a screen
reader, a printout or a colour-blind reader gets the same information as the picture.
"""

from __future__ import annotations

import gettext
import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from markupsafe import Markup, escape

from backend.services.usage import Week

# The dashboard's palette (staff.css); distinguishable in greyscale too, and the bars are
# labelled in the legend and the table, never by colour alone.
COLORS = ("#1f4e79", "#2e7d32", "#8b1a1a", "#6b4400", "#7a5195", "#00695c")
INK = "#1b1b1b"
GUIDE = "#d6d2c4"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
WIDTH, HEIGHT = 600, 300
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 14, 34  # room for the value labels and the week labels
LABEL_SIZE = 15


@dataclass
class Chart:
    """A chart to include with ``staff/_chart.html``: its SVG and its numbers."""

    id: str
    title: str
    svg: Markup
    columns: list[str]  # the table's headers after the week
    rows: list[tuple[str, list[int]]]  # (week label, one number per column)
    legend: list[tuple[str, str]]  # (series name, its colour), drawn in HTML under the chart


def week_label(start: date, lang: str) -> str:
    return start.strftime("%d/%m") if lang == "fr" else start.strftime("%b %d")


def _y_labels(values: list[int]) -> list[int]:
    """Whole, round numbers on the value axis (there is no half call), five or so of them."""
    top = max([*values, 1])
    step = next(
        n * scale
        for scale in (1, 10, 100, 1000, 10_000, 100_000)
        for n in (1, 2, 5)
        if n * scale * 5 >= top
    )
    return list(range(0, top + step, step))


Series = tuple[tuple[str, tuple[int, ...]], ...]  # (name, one value per week), hashable


def _n(value: float) -> str:
    """A coordinate, short: two decimals at most."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


@lru_cache(maxsize=512)
def render_chart(kind: str, title: str, labels: tuple[str, ...], series: Series) -> Markup:
    """One bar chart (``bars``: side by side; ``stacked``: one on the other) as inline SVG,
    named for screen readers. Cached: the same figures give the same picture."""
    count = max(len(labels), 1)
    if kind == "stacked":
        tops = [sum(column) for column in zip(*(values for _n, values in series), strict=True)]
    else:
        tops = [v for _n, values in series for v in values]
    guides = _y_labels(tops)
    scale_top = guides[-1] or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h

    def y(value: float) -> float:
        return bottom - plot_h * value / scale_top

    out = [
        f'<svg role="img" aria-label="{escape(title)}" class="bar-chart" '
        f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'font-family="{escape(FONT)}" font-size="{LABEL_SIZE}" fill="{INK}">'
    ]
    # Value guides and their labels.
    out.append('<g class="guides">')
    for value in guides:
        at = _n(y(value))
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at}" y2="{at}" stroke="{GUIDE}"/>'
            f'<text x="{LEFT - 6}" y="{at}" dy=".35em" text-anchor="end">{value}</text>'
        )
    out.append("</g>")
    # Week labels: every one up to 6 weeks, then spaced so that they never overlap.
    slot = plot_w / count
    every = 1 if count <= 6 else max(2, math.ceil(count / 8))
    out.append('<g class="weeks" text-anchor="middle">')
    for n, label in enumerate(labels):
        if n % every == 0:
            out.append(
                f'<text x="{_n(LEFT + slot * (n + 0.5))}" y="{HEIGHT - 10}">{escape(label)}</text>'
            )
    out.append("</g>")
    # The bars: one rect per week and series with a value, named for a pointer's tooltip.
    out.append('<g class="bars">')
    groups = 1 if kind == "stacked" else max(len(series), 1)
    group_w = slot * 0.8
    bar_w = group_w / groups
    for n, label in enumerate(labels):
        base = 0
        for s, (name, values) in enumerate(series):
            value = values[n]
            if value <= 0:
                continue
            x = LEFT + slot * n + (slot - group_w) / 2 + (0 if kind == "stacked" else bar_w * s)
            top_y, low_y = (y(base + value), y(base)) if kind == "stacked" else (y(value), bottom)
            if kind == "stacked":
                base += value
            out.append(
                f'<rect class="bar" x="{_n(x)}" y="{_n(top_y)}" width="{_n(bar_w)}" '
                f'height="{_n(low_y - top_y)}" fill="{COLORS[s % len(COLORS)]}">'
                f"<title>{escape(name)}, {escape(label)}: {value}</title></rect>"
            )
    out.append("</g>")
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}" stroke="{INK}"/>'
    )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - built here, every text escaped


def usage_charts(
    weeks: list[Week], t: gettext.NullTranslations, lang: str, *, prefix: str
) -> list[Chart]:
    """Three charts: calls per week (made, received, missed), minutes of calls, activities."""
    _ = t.gettext
    labels = [week_label(w.start, lang) for w in weeks]

    calls_title = _("Calls per week")
    made, received, missed = _("Made"), _("Received"), _("Missed")
    calls_series: Series = (
        (made, tuple(w.figures.calls_made for w in weeks)),
        (received, tuple(w.figures.calls_received for w in weeks)),
        (missed, tuple(w.figures.calls_missed for w in weeks)),
    )
    minutes_title = _("Minutes of calls per week")
    minutes_series: Series = ((_("Minutes"), tuple(w.figures.minutes for w in weeks)),)
    keys = sorted({k for w in weeks for k in w.figures.activities})
    activities_title = _("Activities opened per week")
    names = [activity_name(k, t) for k in keys]
    activities_series: Series = tuple(
        (name, tuple(w.figures.activities.get(key, 0) for w in weeks))
        for key, name in zip(keys, names, strict=True)
    ) or ((_("Activities"), tuple(0 for _w in weeks)),)
    axis = tuple(labels)

    return [
        Chart(
            id=f"{prefix}-calls",
            title=calls_title,
            svg=render_chart("bars", calls_title, axis, calls_series),
            columns=[made, received, missed],
            legend=_legend([made, received, missed]),
            rows=[
                (
                    label,
                    [w.figures.calls_made, w.figures.calls_received, w.figures.calls_missed],
                )
                for label, w in zip(labels, weeks, strict=True)
            ],
        ),
        Chart(
            id=f"{prefix}-minutes",
            title=minutes_title,
            svg=render_chart("bars", minutes_title, axis, minutes_series),
            columns=[_("Minutes")],
            legend=[],
            rows=[(label, [w.figures.minutes]) for label, w in zip(labels, weeks, strict=True)],
        ),
        Chart(
            id=f"{prefix}-activities",
            title=activities_title,
            svg=render_chart("stacked", activities_title, axis, activities_series),
            columns=[*names, _("Total")],
            legend=_legend(names),
            rows=[
                (label, [*(w.figures.activities.get(k, 0) for k in keys), w.figures.activity_uses])
                for label, w in zip(labels, weeks, strict=True)
            ],
        ),
    ]


def _legend(names: list[str]) -> list[tuple[str, str]]:
    return [(name, COLORS[n % len(COLORS)]) for n, name in enumerate(names)]


def activity_name(key: str, t: gettext.NullTranslations) -> str:
    """The activity's name as staff know it (the tablet's keys are code names)."""
    names = {
        "photos": t.gettext("Photos"),
        "memory": t.gettext("Memory game"),
        "clock": t.gettext("Day and time"),
    }
    return names.get(key, key)
