"""Weekly usage charts as inline SVG, drawn on the server by pygal (no JavaScript, no CDN).

pygal is not cheap: ~10 ms of CPU for a chart of three series and twelve weeks, ~5 ms for one
series, on an idle core of the 2-core test machine (docs/scale.md), most of it pygal's own
bookkeeping (lxml instead of xml.etree does not help). What we leave out: the XML declaration,
pygal's script (and with it the data its tooltips read, which nothing on our pages uses) and its
legend (ours is HTML). Charts are cached by their figures, so a page's charts cost that only when
a day's figures change.

Each chart comes with its numbers (a table the template puts in a ``<details>``), so a screen
reader, a printout or a colour-blind reader gets the same information as the picture.
"""

from __future__ import annotations

import gettext
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import pygal  # type: ignore[import-untyped]
from markupsafe import Markup
from pygal.style import Style  # type: ignore[import-untyped]

from backend.services.usage import Week

# The dashboard's palette (staff.css); distinguishable in greyscale too, and the bars are
# labelled in the legend and the table, never by colour alone.
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1b1b1b",
    foreground_strong="#1b1b1b",
    foreground_subtle="#8c8778",
    colors=("#1f4e79", "#2e7d32", "#8b1a1a", "#6b4400", "#7a5195", "#00695c"),
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    label_font_size=15,
    major_label_font_size=15,
    legend_font_size=16,
    title_font_size=16,
    value_font_size=14,
    opacity="1",
    opacity_hover="1",
)
_SVG_OPEN = re.compile(r"^<svg ")
_PYGAL_TITLE = "<title>Pygal</title>"
_COMMENTS = re.compile(r"<!--.*?-->", re.S)
# pygal inlines its configuration for its (unused) tooltips script: no script on our pages.
_SCRIPTS = re.compile(r"<script\b.*?</script>", re.S)


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


class _NoTooltips:
    """pygal writes, for every bar, the figures its tooltips script reads (four ``<desc>``
    elements): without the script they are dead weight, a quarter of the SVG and ~15 % of the
    time. The numbers are in the table under each chart."""

    def _tooltip_data(self, *_args: object, **_kwargs: object) -> None:
        return None


class _Bar(_NoTooltips, pygal.Bar):  # type: ignore[misc]
    pass


class _StackedBar(_NoTooltips, pygal.StackedBar):  # type: ignore[misc]
    pass


@lru_cache(maxsize=512)
def render_chart(kind: str, title: str, labels: tuple[str, ...], series: Series) -> Markup:
    """One bar chart as inline SVG, named for screen readers.

    Cached: the same figures give the same picture, and a page's charts change only when a
    day's figures do (pygal takes ~5-10 ms per chart, see the module's docstring).
    """
    chart = (_StackedBar if kind == "stacked" else _Bar)(
        style=STYLE,
        js=(),  # pygal's tooltips load a script from a CDN: never
        disable_xml_declaration=True,
        width=600,
        height=300,
        explicit_size=False,
        show_legend=False,  # an HTML legend under the chart: real text, same size as the page
        show_y_guides=True,
        print_zeroes=False,
        margin=12,
        truncate_label=-1,
        x_label_rotation=0,
    )
    chart.x_labels = list(labels)
    if kind == "stacked":
        tops = [sum(column) for column in zip(*(values for _n, values in series), strict=True)]
    else:
        tops = [v for _n, values in series for v in values]
    chart.y_labels = _y_labels(tops)
    # Every other week label keeps them readable at phone width.
    if len(labels) > 6:
        chart.x_labels_major_every = 2
        chart.show_minor_x_labels = False
    for name, values in series:
        chart.add(name, list(values))
    svg = chart.render(is_unicode=True)
    svg = _SCRIPTS.sub("", _COMMENTS.sub("", svg))
    # The SVG's own title (what a pointer shows) is the chart's, not the library's name.
    svg = svg.replace(_PYGAL_TITLE, f"<title>{Markup.escape(title)}</title>", 1)
    opening = f'<svg role="img" aria-label="{Markup.escape(title)}" '
    return Markup(_SVG_OPEN.sub(lambda _m: opening, svg, count=1))  # noqa: S704 - pygal's SVG


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
    colors = STYLE.colors
    return [(name, colors[n % len(colors)]) for n, name in enumerate(names)]


def activity_name(key: str, t: gettext.NullTranslations) -> str:
    """The activity's name as staff know it (the tablet's keys are code names)."""
    names = {
        "photos": t.gettext("Photos"),
        "memory": t.gettext("Memory game"),
        "clock": t.gettext("Day and time"),
    }
    return names.get(key, key)
