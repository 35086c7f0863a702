"""The dashboard's chart, drawn on the server as SVG: due vs paid per month (or per year for All)."""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _

from portal.web.formats import money, month_name

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


def due_vs_paid(rows, year: int | None) -> Chart | None:
    """Build the chart for the monthly rows of one year, or per-year sums when `year` is None."""
    if not rows:
        return None
    if year is not None:
        groups = [(month_name(r.month, True), r.amount_to_pay_cents, r.amount_paid_cents) for r in rows]
        title = _("Due and paid per month in %(year)s", year=year)
    else:
        sums: dict[int, list[int]] = {}
        for r in rows:
            due_paid = sums.setdefault(r.year, [0, 0])
            due_paid[0] += r.amount_to_pay_cents
            due_paid[1] += r.amount_paid_cents
        groups = [(str(y), d, p) for y, (d, p) in sorted(sums.items())]
        title = _("Due and paid per year")
    top = _nice_top(max(max(d, p) for _, d, p in groups))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / len(groups)
    bar_w = min(slot * 0.36, 28)
    bars, labels = [], []
    for i, (label, due, paid) in enumerate(groups):
        centre = LEFT + slot * (i + 0.5)
        for kind, value, x in (("due", due, centre - bar_w - 1), ("paid", paid, centre + 1)):
            h = plot_h * value / top
            bars.append(Bar(round(x, 1), round(TOP + plot_h - h, 1), round(bar_w, 1), round(h, 1), kind,
                            _("%(label)s: due %(amount)s", label=label, amount=money(value)) if kind == "due"
                            else _("%(label)s: paid %(amount)s", label=label, amount=money(value))))
        labels.append((round(centre, 1), label))
    ticks = [(round(TOP + plot_h * (1 - k / 4), 1), money(top * k // 4)) for k in range(5)]
    return Chart(WIDTH, HEIGHT, title, bars, labels, ticks, TOP + plot_h, LEFT, WIDTH - RIGHT)
