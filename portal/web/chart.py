"""Bar charts drawn on the server as SVG: due vs paid per month (the dashboard), score histograms (the shadow page).

``grouped_bars`` lays out groups of side-by-side bars, one per series; the
template ``_chart.html`` draws any of them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask_babel import gettext as _

from portal.web.formats import money, month_name, number

WIDTH, HEIGHT = 720, 250
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 14, 34


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # due | paid
    title: str


@dataclass
class Chart:
    width: int
    height: int
    title: str
    bars: list[Bar]
    labels: list[tuple[float, str]]
    ticks: list[tuple[float, str]]
    baseline: float
    left: int
    right: float
    series: list[tuple[str, str]] = field(default_factory=list)  # (kind, legend label) per series
    desc: str = ""


def _nice_top(value: int) -> int:
    """Round the axis top up to 1, 2 or 5 times a power of ten (in minor units)."""
    if value <= 0:
        return 100
    step = 1
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def _count_top(value: int) -> int:
    """Round a count axis up so that its four steps are whole, round numbers."""
    return 4 * _nice_top(-(-value // 4)) if value > 0 else 4


def grouped_bars(groups: list[tuple[str, list[int]]], series: list[tuple[str, str]], title: str, desc: str,
                 tick: Callable[[int], str], nice: Callable[[int], int] = _nice_top) -> Chart:
    """Lay out one group of bars per label, one bar per series (values are integers: cents or counts)."""
    top = nice(max(max(values) for _, values in groups))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / len(groups)
    bar_w = min(slot * 0.72 / len(series), 28)
    bars, labels = [], []
    for i, (label, values) in enumerate(groups):
        centre = LEFT + slot * (i + 0.5)
        start = centre - (bar_w + 1) * len(series) / 2
        for k, ((kind, name), value) in enumerate(zip(series, values)):
            h = plot_h * value / top
            bars.append(Bar(round(start + k * (bar_w + 2), 1), round(TOP + plot_h - h, 1), round(bar_w, 1),
                            round(h, 1), kind, f"{label}: {name} {tick(value)}"))
        labels.append((round(centre, 1), label))
    ticks = [(round(TOP + plot_h * (1 - k / 4), 1), tick(top * k // 4)) for k in range(5)]
    return Chart(WIDTH, HEIGHT, title, bars, labels, ticks, TOP + plot_h, LEFT, WIDTH - RIGHT, series, desc)


def due_vs_paid(rows, year: int | None) -> Chart | None:
    """Build the chart for the monthly rows of one year, or per-year sums when `year` is None."""
    if not rows:
        return None
    if year is not None:
        groups = [(month_name(r.month, True), [r.amount_to_pay_cents, r.amount_paid_cents]) for r in rows]
        title = _("Due and paid per month in %(year)s", year=year)
    else:
        sums: dict[int, list[int]] = {}
        for r in rows:
            due_paid = sums.setdefault(r.year, [0, 0])
            due_paid[0] += r.amount_to_pay_cents
            due_paid[1] += r.amount_paid_cents
        groups = [(str(y), d_p) for y, d_p in sorted(sums.items())]
        title = _("Due and paid per year")
    return grouped_bars(groups, [("due", _("Due")), ("paid", _("Paid"))], title,
                        _("Bars compare the amount due with the amount paid; the table below has the same numbers."),
                        money)


def score_histograms(champion: list[dict], challenger: list[dict], title: str) -> Chart | None:
    """Build side-by-side score histograms (``model_overview.score_histogram`` bins) of two models."""
    if not any(b["count"] for b in champion + challenger):
        return None
    groups = [(f"{a['from']:.1f}", [a["count"], b["count"]]) for a, b in zip(champion, challenger)]
    return grouped_bars(groups, [("champion", _("Champion")), ("challenger", _("Challenger"))], title,
                        _("Bars compare how many decisions each model scored in each tenth of the score range; "
                          "the table below has the same numbers."), number, _count_top)
