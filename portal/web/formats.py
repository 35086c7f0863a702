"""Numbers, dates and names for people: the pages' template filters, all through Babel (Flask-Babel).

The locale comes from Flask-Babel's locale selector (``portal.languages.select_locale``:
the switcher's choice, else the browser's ``Accept-Language``; an email forces the
customer's language), the time zone from ``BABEL_DEFAULT_TIMEZONE`` and the currency
from ``CURRENCY`` (the same currency in every language; only its writing changes:
"$1,234.56" in English, "1.234,56 $" in German). The JSON API and the CSV keep plain
"1250.00" strings; only pages, emails and the PDF are formatted. Labels are lazy
gettext strings, translated when they are drawn.
"""
from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal

from babel.dates import format_datetime, format_skeleton, get_datetime_format, get_month_names
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_name
from flask import Blueprint, current_app
from flask_babel import get_locale, get_timezone, ngettext
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

bp = Blueprint("formats", __name__)

METHODS = {"percentage": _l("Percentage of dues paid"), "ml": _l("ML model score")}
CHECKS = {"eligibility": _l("Eligibility"), "score": _l("Score"), "limit": _l("Credit limit")}
METRICS = {
    "test_auc": _l("Ranking quality (AUC)"),
    "test_ece": _l("Calibration error (ECE)"),
    "test_brier": _l("Brier score"),
    "baseline_auc": _l("AUC of the percentage rule"),
    "bayes_auc": _l("Best possible AUC (true probabilities)"),
    "true_probability_auc": _l("AUC of the true probabilities (a reference)"),
    "auc_lift_over_baseline": _l("AUC gained over the percentage rule"),
    "test_approval_rate": _l("Approval rate"),
    "test_bad_rate_approved": _l("Bad outcomes among the approved"),
    "test_ks": _l("Separation of good and bad (KS)"),
    "test_log_loss": _l("Log loss"),
    "auc_lift_over_champion": _l("AUC gained over the champion of its day"),
    "test_bad_rate_at_rule_rate": _l("Bad outcomes when approving as many as the rule"),
}
# Metrics that are shares, shown as percentages; the others are scores in 0..1.
SHARE_METRICS = {"test_approval_rate", "test_bad_rate_approved", "test_bad_rate_at_rule_rate"}
# Drift bands as serving names them; "too few (< 100)" and "no data" say nothing about a shift.
BANDS = {"stable": _l("Stable"), "watch": _l("Watch"), "shifted": _l("Shifted"), "no data": _l("No data")}
TOO_FEW = _l("Too few decisions to tell")
NOT_AVAILABLE = _l("n/a")
KINDS = {"logreg": _l("Logistic regression"), "hgb": _l("Gradient-boosted trees")}
SCORERS = {"compiled, exact": _l("Compiled, exact (scikit-learn's numbers)"),
           "scikit-learn predict_proba": _l("scikit-learn")}


def _locale():
    return get_locale() or current_app.config.get("BABEL_DEFAULT_LOCALE", "en")


@bp.app_template_filter("money")
def money(value: int | str | None) -> str:
    """Format an amount with its currency and thousands separators: minor units (int) or a "1250.00" string."""
    if value is None or value == "":
        return ""
    units = Decimal(value) if isinstance(value, str) else Decimal(int(value)) / 100
    return format_currency(units, current_app.config["CURRENCY"], locale=_locale())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite: naive UTC


@bp.app_template_filter("when")
def when(moment: datetime | None) -> str:
    """Show a stored time as a date and time in words, in the configured zone ("Nov 30, 2026, 03:14 UTC")."""
    if moment is None:
        return ""
    moment, zone, locale = _aware(moment), get_timezone(), _locale()
    day = format_skeleton("yMMMd", moment, tzinfo=zone, locale=locale)
    time = format_skeleton("Hm", moment, tzinfo=zone, locale=locale) + format_datetime(
        moment, " z", tzinfo=zone, locale=locale)
    return get_datetime_format("medium", locale=locale).replace("{1}", day).replace("{0}", time)


@bp.app_template_filter("day")
def day(moment: datetime | date | str | None) -> str:
    """Show a date (or an ISO date-time string) as a date in words ("Nov 30, 2026")."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if isinstance(moment, datetime):
        moment = _aware(moment).astimezone(get_timezone())
    return format_skeleton("yMMMd", moment, locale=_locale())


@bp.app_template_filter("month_year")
def month_year(year: int, month: int, short: bool = False) -> str:
    """Name a month of a year ("December 2025", or "Dec 2025" when short)."""
    return format_skeleton("yMMM" if short else "yMMMM", date(int(year), int(month), 1), locale=_locale())


@bp.app_template_filter("month_name")
def month_name(month: int, short: bool = False) -> str:
    """Name a month number ("December", or "Dec" when short)."""
    return get_month_names("abbreviated" if short else "wide", "stand-alone", locale=_locale())[int(month)]


@bp.app_template_filter("pct")
def pct(value: float | None) -> str:
    """Show a percentage (0..100) with at most two decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return str(NOT_AVAILABLE)
    return format_percent(Decimal(str(value)) / 100, "#,##0.##%", locale=_locale())


@bp.app_template_filter("score")
def score(value: float | None) -> str:
    """Show a model score or threshold with three decimals, everywhere the same."""
    return str(NOT_AVAILABLE) if value is None else format_decimal(value, "0.000", locale=_locale())


@bp.app_template_filter("number")
def number(value: float | int | None, digits: int = 0) -> str:
    """Show a plain number with the locale's separators and up to `digits` decimals."""
    if value is None:
        return str(NOT_AVAILABLE)
    return format_decimal(value, "#,##0" + ("." + "#" * digits if digits else ""), locale=_locale())


@bp.app_template_filter("metric")
def metric(value: float | None, name: str) -> str:
    """Show a model metric: shares as percentages, scores with three decimals."""
    if value is None:
        return str(NOT_AVAILABLE)
    return pct(100 * value) if name in SHARE_METRICS else score(value)


@bp.app_template_filter("metric_rows")
def metric_rows(metrics: dict[str, float]) -> list[tuple[str, float, float | None, float | None]]:
    """Pair each metric with its 95 % interval (``<name>_low``/``_high``): (name, value, low, high), sorted."""
    names = sorted(n for n in metrics if not n.endswith(("_low", "_high")))
    return [(n, metrics[n], metrics.get(f"{n}_low"), metrics.get(f"{n}_high")) for n in names]


@bp.app_template_filter("label")
def label(name: str | None, kind: str) -> str:
    """Say a method, check, metric, drift band, model kind or scorer in words (the name itself when unknown)."""
    if kind == "band" and (name or "").startswith("too few"):
        return str(TOO_FEW)
    table = {"method": METHODS, "check": CHECKS, "metric": METRICS, "band": BANDS, "kind": KINDS,
             "scorer": SCORERS}[kind]
    return str(table.get(name, name or NOT_AVAILABLE))


@bp.app_template_filter("feature_label")
def feature_label(name: str) -> str:
    """Say a yearly feature of the model in words: "the year before last (2024)" for paid_pct_2y_ago."""
    match = re.fullmatch(r"paid_pct_(\d+)y_ago", name or "")
    if not match:
        return name
    years = int(match.group(1))
    return ngettext("%(num)s year back (%(year)s)", "%(num)s years back (%(year)s)", years,
                    year=date.today().year - years)


@bp.app_template_filter("band_tone")
def band_tone(name: str | None) -> str:
    """Colour a drift band: good when stable, warning when to watch, bad when shifted, neutral otherwise."""
    return {"stable": "good", "watch": "warn", "shifted": "bad"}.get(name or "", "neutral")


@bp.app_template_filter("email")
def email(address: str | None) -> Markup:
    """Show an email address that wraps only before "@" and before dots, never inside a word."""
    if not address:
        return Markup("—")
    local, _, domain = address.partition("@")
    parts = [escape(local)] + ([Markup("<wbr>@") + Markup("<wbr>.").join(escape(p) for p in domain.split("."))]
                               if domain else [])
    return Markup('<span class="email">') + Markup("").join(parts) + Markup("</span>")


@bp.app_template_global()
def currency_name() -> str:
    """Name the pages' currency in words ("US dollars")."""
    return get_currency_name(current_app.config["CURRENCY"], count=2, locale=_locale())


@bp.app_template_global()
def zone_name() -> str:
    """Name the pages' time zone ("UTC")."""
    return str(get_timezone())
