"""Downloads: the whole history as CSV (plain numbers, for spreadsheets) and a PDF statement (fpdf2, for people)."""
from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from portal.money import format_cents
from portal.web.formats import day, money, month_year, pct, when

# kind: payment | imported (a month's paid from the import, dated by the month) | bank credit applied,
# undone (by a reversal) or refunded. Amounts are plain "1250.00", times ISO 8601 in UTC.
CSV_COLUMNS = ["kind", "id", "date", "year", "month", "amount", "allocations", "to_bank_credit", "source",
               "reversed", "reversed_at", "reason"]
CSV_KINDS = {"payment": "payment", "imported": "imported", "applied": "bank credit applied",
             "unapplied": "bank credit application undone", "refund": "bank credit refund"}


def _cell(value: str) -> str:
    """Keep a spreadsheet from reading a text cell as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _where(line) -> str:
    return "; ".join(f"{a.year}-{a.month:02d} {format_cents(a.amount_cents)}" for a in line.allocations)


def _iso(moment) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def history_csv(lines) -> str:
    """Write the whole history (newest first) as CSV, one row per payment, imported month or bank credit move."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in lines:
        p, r, e = line.payment, line.reversal, line.entry
        if line.kind == "imported":
            date_, ident, source = f"{line.year}-{line.month:02d}", "", "import"
        else:
            date_, ident, source = _iso(line.when), (p or e).id, p.source if p else ""
        reason = r.reason if r else (e.reason if e and e.reason else "")
        writer.writerow([CSV_KINDS[line.kind], ident, date_, line.year or "", line.month or "",
                         format_cents(line.amount_cents), _where(line),
                         format_cents(p.to_bank_credit_cents) if p else "", source,
                         ("yes" if r else "no") if p else "", _iso(r.created_at) if r else "", _cell(reason)])
    return out.getvalue()


PDF_KINDS = {"payment": _l("Payment"), "imported": _l("Imported"), "applied": _l("Bank credit applied"),
             "unapplied": _l("Bank credit application undone"), "refund": _l("Bank credit refunded")}
# Columns of words (left-aligned); the others hold amounts and percentages (right-aligned).
TEXT_COLUMNS = {"month", "year", "date", "where", "status"}


def _words(line) -> str:
    """Say where a history line's money went, for people."""
    parts = [f"{month_year(a.year, a.month, True)}: {money(a.amount_cents)}" for a in line.allocations]
    if line.kind == "imported":
        parts = [month_year(line.year, line.month, True)]
    if line.payment is not None and line.payment.to_bank_credit_cents:
        parts.append(_("bank credit: %(amount)s", amount=money(line.payment.to_bank_credit_cents)))
    return ", ".join(parts)


def _text(value) -> str:
    """Return text for the PDF (the embedded DejaVu font draws Latin, Greek and Cyrillic names; not CJK)."""
    return str(value)


FONT = "DejaVu"


class Statement(FPDF):
    """An A4 statement with an embedded Unicode font and page numbers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # matplotlib (already a dependency) ships DejaVu Sans: no font file of our own to keep.
        # Imported here, not at the top: it is slow to import and only a PDF statement needs it.
        import matplotlib

        fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        self.add_font(FONT, "", str(fonts / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(fonts / "DejaVuSans-Bold.ttf"))

    def footer(self):
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.cell(0, 8, _("Page %(page)s/%(pages)s", page=self.page_no(), pages="{nb}"), align="C")


def _table(pdf: FPDF, headings: list[tuple[str, str]], rows: list[list[str]], widths: tuple[int, ...]) -> None:
    """Draw a table; `headings` are (column, words) pairs, the column naming how it aligns."""
    align = ["LEFT" if column in TEXT_COLUMNS else "RIGHT" for column, _words in headings]
    with pdf.table(col_widths=widths, text_align=align, line_height=6, first_row_as_headings=True) as table:
        table.row([_text(words) for _column, words in headings])
        for row in rows:
            table.row([_text(v) for v in row])


def statement_pdf(info: dict, year: int | None, months: list[dict], totals: dict, entries,
                  today: date) -> bytes:
    """Build the statement: the customer's details and totals, the months, and the payments."""
    c = info["customer"]
    pdf = Statement(format="A4")
    pdf.set_title(_text(_("Statement for customer %(id)s", id=c["id"])))
    pdf.set_author(_("Credit decision service"))
    pdf.add_page()
    pdf.set_font(FONT, "B", 16)
    pdf.cell(0, 10, _("Account statement"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=10)
    period = _("all years") if year is None else str(year)
    for line in (_("Customer %(id)s: %(name)s", id=c["id"], name=c["name"]),
                 _("Email: %(email)s   Phone: %(phone)s", email=c["email"] or "-", phone=c["phone"] or "-"),
                 _("Period: %(period)s   Issued: %(day)s", period=period, day=day(today))):
        pdf.cell(0, 6, _text(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 8, _("Totals (whole account)"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=10)
    _table(pdf, [("credit", _("Total credit")), ("paid", _("Total paid")), ("balance", _("Balance")),
                 ("bank_credit", _("Bank credit")), ("share", _("Paid %"))],
           [[money(info["total_credit"]), money(info["total_paid"]), money(info["balance"]),
             money(info["bank_credit"]), pct(info["percentage_paid"])]], (1, 1, 1, 1, 1))
    pdf.ln(4)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 8, _("Months (%(period)s)", period=period), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
    rows = [[month_year(m["year"], m["month"]), money(m["amount_to_pay"]), money(m["amount_paid"]),
             money(m["needtopay"])] for m in months]
    rows.append([_("Total"), money(totals["amount_to_pay"]), money(totals["amount_paid"]),
                 money(totals["needtopay"])])
    _table(pdf, [("month", _("Month")), ("due", _("Amount to pay")), ("paid", _("Paid")),
                 ("owed", _("Need to pay"))], rows, (2, 2, 2, 2))
    pdf.ln(4)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 8, _("History"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
    if entries:
        rows = [[month_year(e.year, e.month) if e.kind == "imported" else when(e.when), PDF_KINDS[e.kind],
                 money(e.amount_cents), _words(e) or "-",
                 _("reversed") if e.reversal else ""] for e in entries]
        _table(pdf, [("date", _("Date")), ("what", _("What")), ("amount", _("Amount")),
                     ("where", _("Where it went")), ("status", _("Status"))], rows, (3, 3, 2, 5, 2))
    else:
        pdf.cell(0, 6, _("Nothing paid yet."), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
