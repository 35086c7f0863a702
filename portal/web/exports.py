"""Downloads: the payment history as CSV and a PDF statement (fpdf2)."""
from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from portal.money import format_cents
from portal.web.pages import month_name, pct, when

CSV_COLUMNS = ["payment_id", "created_at", "year", "month", "amount", "allocations", "to_bank_credit",
               "source", "reversed", "reversed_at", "reversal_reason"]


def _cell(value: str) -> str:
    """Keep a spreadsheet from reading a text cell as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _where(entry) -> str:
    return "; ".join(f"{a.year}-{a.month:02d} {format_cents(a.amount_cents)}" for a in entry.allocations)


def history_csv(entries) -> str:
    """Write payment entries (newest first) as CSV, one row per payment."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        p, r = e.payment, e.reversal
        writer.writerow([p.id, when(p.created_at), p.year, p.month, format_cents(p.amount_cents), _where(e),
                         format_cents(p.to_bank_credit_cents), p.source, "yes" if r else "no",
                         when(r.created_at) if r else "", _cell(r.reason) if r else ""])
    return out.getvalue()


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
        self.cell(0, 8, f"Page {self.page_no()}/{{nb}}", align="C")


def _table(pdf: FPDF, headings: list[str], rows: list[list[str]], widths: tuple[int, ...]) -> None:
    right = [h not in ("Month", "Year", "Date", "Where it went", "Status") for h in headings]
    with pdf.table(col_widths=widths, text_align=["RIGHT" if r else "LEFT" for r in right],
                   line_height=6, first_row_as_headings=True) as table:
        table.row([_text(h) for h in headings])
        for row in rows:
            table.row([_text(v) for v in row])


def statement_pdf(info: dict, year: int | None, months: list[dict], totals: dict, entries,
                  today: date) -> bytes:
    """Build the statement: the customer's details and totals, the months, and the payments."""
    c = info["customer"]
    pdf = Statement(format="A4")
    pdf.set_title(_text(f"Statement for customer {c['id']}"))
    pdf.set_author("Credit decision service")
    pdf.add_page()
    pdf.set_font(FONT, "B", 16)
    pdf.cell(0, 10, "Account statement", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=10)
    period = "all years" if year is None else str(year)
    for line in (f"Customer {c['id']}: {c['name']}", f"Email: {c['email'] or '-'}   Phone: {c['phone'] or '-'}",
                 f"Period: {period}   Issued: {today.isoformat()}"):
        pdf.cell(0, 6, _text(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 8, "Totals (whole account)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=10)
    _table(pdf, ["Total credit", "Total paid", "Balance", "Bank credit", "Paid %"],
           [[info["total_credit"], info["total_paid"], info["balance"], info["bank_credit"],
             pct(info["percentage_paid"])]], (1, 1, 1, 1, 1))
    pdf.ln(4)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 8, f"Months ({period})", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
    rows = [[str(m["year"]), month_name(m["month"]), m["amount_to_pay"], m["amount_paid"], m["needtopay"]]
            for m in months]
    rows.append(["Total", "", totals["amount_to_pay"], totals["amount_paid"], totals["needtopay"]])
    _table(pdf, ["Year", "Month", "Amount to pay", "Paid", "Need to pay"], rows, (1, 1, 2, 2, 2))
    pdf.ln(4)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 8, "Payments", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, size=9)
    if entries:
        rows = [[when(e.payment.created_at), f"{e.payment.year}-{e.payment.month:02d}",
                 format_cents(e.payment.amount_cents), _where(e) or "-",
                 format_cents(e.payment.to_bank_credit_cents), "reversed" if e.reversal else "ok"]
                for e in entries]
        _table(pdf, ["Date", "Month", "Amount", "Where it went", "Bank credit", "Status"], rows,
               (3, 2, 2, 5, 2, 2))
    else:
        pdf.cell(0, 6, "No payments yet.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
