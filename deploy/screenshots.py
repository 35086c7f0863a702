"""Regenerate docs/screenshots/ from the real demo: `make run` in a throwaway VAR_DIR, then Chromium on every page.

`make screenshots` runs this. It starts the system exactly as `make run` does (the
demo data, a trained champion, the decision service and the portal) on free
loopback ports in a temporary VAR_DIR, waits until serving has its model, then
drives Debian's Chromium with Playwright through every page as the demo customer
101, a customer the percentage rule rejects, and the demo manager (who also retrains
a second version in the model workbench), at desktop
(1280x800) and phone (375x812) size; last, the main pages again in German
(``de-*.png``: the switcher chosen before login, so customer 101 and manager 1
keep German in that throwaway demo). Every PNG in docs/screenshots/ is written
anew (the old ones are deleted first) and the list is printed; nothing needs
the network. ``--only de`` takes the German pictures alone (the others stay).
docs/pages.md lists the pictures.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from deploy.ready import wait

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 812}}
DEMO_PASSWORD = "customer123"


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    """`make run` on free ports in a throwaway VAR_DIR, in a process group of its own."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.portal_port, self.serving_port, self.workbench_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.portal_port}"
        self.serving_url = f"http://127.0.0.1:{self.serving_port}"
        self.log = workdir / "make-run.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float) -> Demo:
        """Start `make run` and wait until serving has its model and the portal answers."""
        env = {**os.environ, "VAR_DIR": str(self.workdir / "var"), "PORTAL_PORT": str(self.portal_port),
               "SERVING_PORT": str(self.serving_port), "SERVING_URL": self.serving_url,
               "WORKBENCH_PORT": str(self.workbench_port), "WORKBENCH_URL": f"http://127.0.0.1:{self.workbench_port}",
               "MLFLOW_TRACKING_URI": f"sqlite:///{self.workdir / 'var' / 'mlflow.db'}"}
        env.pop("DATABASE_URL", None)  # the demo's own SQLite ledger under VAR_DIR
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        print(f"make run (log: {self.log}) ...", flush=True)
        if not wait([f"{self.serving_url}/ready", f"{self.url}/"], timeout, lambda line: print(line, flush=True)):
            self.stop()
            raise RuntimeError(f"the demo did not start; the end of {self.log}:\n"
                               + self.log.read_text(errors="replace")[-3000:])
        return self

    def stop(self) -> None:
        """Stop make, serving and the portal (the whole process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Camera:
    """Takes each page at both sizes and remembers what it wrote."""

    def __init__(self, out: Path):
        self.out = out
        self.written: list[str] = []

    def both(self, page, name: str, at: str | None = None) -> None:
        """Save the page at desktop and phone size as <name>-desktop.png and <name>-phone.png (scrolled to `at`)."""
        for size in ("desktop", "phone"):
            page.set_viewport_size(SIZES[size])
            page.wait_for_timeout(150)  # let the layout settle at the new width
            if at:
                page.locator(at).first.evaluate("e => e.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(100)
            image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
            path = self.out / f"{name}-{size}.png"
            # 128 colours: a third of the bytes of a full-colour PNG, the same look for flat pages.
            image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                path, optimize=True)
            self.written.append(path.name)
        page.set_viewport_size(SIZES["desktop"])


# The login form's and header's words in each language the pictures are taken in.
WORDS = {"en": {"password": "Password", "log_in": "Log in", "log_out": "Log out"},
         "de": {"password": "Passwort", "log_in": "Anmelden", "log_out": "Abmelden"}}


def log_in(page, role: str, user_id: int, password: str, language: str = "en") -> None:
    """Log in through the login page (whose words are in `language`)."""
    words = WORDS[language]
    page.goto(f"/{role}/login")
    page.get_by_label("ID", exact=True).fill(str(user_id))
    page.get_by_label(words["password"], exact=True).fill(password)
    page.get_by_role("button", name=words["log_in"]).click()
    page.get_by_role("button", name=words["log_out"]).wait_for()


def log_out(page, language: str = "en") -> None:
    """Log out with the header's button."""
    page.get_by_role("button", name=WORDS[language]["log_out"]).click()
    page.wait_for_load_state()


def ask_credit(page, amount: str, method: str) -> None:
    """Fill the credit form for next January and submit it."""
    page.goto("/credit")
    page.get_by_label("Year", exact=True).select_option(str(time.gmtime().tm_year + 1))
    page.get_by_label("Month", exact=True).select_option("1")
    page.get_by_label("Amount", exact=True).fill(amount)
    page.get_by_label("Percentage of dues paid" if method == "percentage" else "ML model score", exact=True).check()
    page.get_by_role("button", name="Request credit").click()
    page.wait_for_url(re.compile(r"/decisions/|/credit"))


def customer_pages(page, shoot: Camera) -> None:
    """The demo customer 101: dashboard, pay with its preview, where it went, credit by both methods."""
    page.goto("/")
    shoot.both(page, "landing")
    page.goto("/customer/login")
    page.get_by_label("ID", exact=True).fill("101")
    page.get_by_label("Password", exact=True).fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").wait_for()
    shoot.both(page, "customer-login")
    log_in(page, "customer", 101, DEMO_PASSWORD)
    shoot.both(page, "customer-dashboard")
    last_year = time.gmtime().tm_year - 1
    page.goto(f"/customers/101?year={last_year}")
    shoot.both(page, "customer-dashboard-year", at="#months-h")
    shoot.both(page, "customer-history", at="#history-h")

    # Pay: the form opens on the oldest month owed; the preview says where the money goes.
    page.goto("/pay")
    page.get_by_label("Amount", exact=True).fill("1500.00")
    page.locator("#payment-preview table").wait_for()
    shoot.both(page, "pay")
    # A month already paid: the preview says so and sends the money to the oldest months owed.
    page.get_by_label("Year", exact=True).select_option(str(last_year))
    page.get_by_label("Month", exact=True).select_option("12")
    paid = page.locator("#payment-preview", has_text="already paid")
    page.wait_for_timeout(600)
    if paid.count():
        shoot.both(page, "pay-preview-month-already-paid")
    page.get_by_role("button", name="Pay", exact=True).click()
    page.get_by_role("heading", name="Payment received").wait_for()
    shoot.both(page, "payment-result")

    page.goto("/credit")
    page.get_by_label("Amount", exact=True).fill("100.00")
    shoot.both(page, "credit-request")
    ask_credit(page, "100.00", "percentage")
    shoot.both(page, "credit-decision-percentage")
    ask_credit(page, "100.00", "ml")
    shoot.both(page, "credit-ml-decision")
    shoot.both(page, "credit-ml-decision-reasons", at=".reasons")
    log_out(page)


def rejected_pages(page, shoot: Camera, customer_id: int) -> None:
    """A customer the percentage rule rejects: the rejection with what to do next."""
    log_in(page, "customer", customer_id, DEMO_PASSWORD)
    ask_credit(page, "500.00", "percentage")
    shoot.both(page, "credit-rejected")
    log_out(page)


def overpay(page, customer_id: int) -> None:
    """Pay everything a customer owes and 250.00 more, so they hold bank credit (for the refund page)."""
    log_in(page, "customer", customer_id, DEMO_PASSWORD)
    page.goto("/pay")
    balance = page.locator("main p strong").first.inner_text()
    owed = re.sub(r"[^0-9.]", "", balance)
    page.get_by_label("Amount", exact=True).fill(f"{float(owed or 0) + 250:.2f}")
    page.get_by_role("button", name="Pay", exact=True).click()
    page.get_by_role("heading", name="Payment received").wait_for()
    log_out(page)


def manager_pages(page, shoot: Camera, refund_customer: int) -> None:
    """The demo manager: portfolio, a customer, decisions and a replay, the model, reversal, refund, forms, 404."""
    log_in(page, "manager", 1, "manager123")
    shoot.both(page, "manager-portfolio")
    page.goto("/customers/101")
    shoot.both(page, "manager-customer")
    page.goto("/manager/decisions")
    shoot.both(page, "manager-decisions")
    page.goto("/manager/decisions?method=ml")
    page.locator("#decisions tbody tr a").first.click()
    page.get_by_role("button", name="Replay this decision").wait_for()
    shoot.both(page, "manager-ml-decision")
    page.get_by_role("button", name="Replay this decision").click()
    page.get_by_role("heading", name="Replay of a decision").wait_for()
    shoot.both(page, "manager-replay")
    page.goto("/manager/model")
    shoot.both(page, "manager-model")
    page.goto("/customers/101")
    page.get_by_role("link", name="Reverse…").first.click()
    page.get_by_label("Reason", exact=True).fill("Cheque bounced")
    shoot.both(page, "manager-reverse")
    page.goto(f"/manager/customers/{refund_customer}/refund")
    page.get_by_label("Reason", exact=True).fill("The customer asked for their overpayment back")
    shoot.both(page, "manager-refund")
    page.get_by_role("button", name="Refund").click()
    page.wait_for_url(re.compile(r"/customers/\d+$"))
    shoot.both(page, "manager-refund-done")
    page.goto("/manager/customers/new")
    shoot.both(page, "manager-new-customer")
    page.goto("/manager/customers/101/password")
    shoot.both(page, "manager-reset-password")
    for path, name in (("/manager/admin/managers", "admin-managers"),
                       ("/manager/admin/customers/101", "admin-customer"),
                       ("/manager/admin/audit", "admin-audit"),
                       ("/manager/admin/mail", "admin-mail")):
        page.goto(path)
        shoot.both(page, name)
    page.goto("/no-such-page")
    shoot.both(page, "error-404")
    log_out(page)


def german_pages(page, shoot: Camera) -> None:
    """The main pages in German: chosen with the header's switcher, kept through both logins."""
    page.goto("/")
    page.get_by_role("button", name="Deutsch").click()
    page.get_by_role("heading", name="Ihr Kreditkonto an einem Ort").wait_for()
    shoot.both(page, "de-landing")
    log_in(page, "customer", 101, DEMO_PASSWORD, "de")
    shoot.both(page, "de-customer-dashboard")
    page.goto(f"/customers/101?year={time.gmtime().tm_year - 1}")
    shoot.both(page, "de-customer-history", at="#history-h")
    page.goto("/pay")
    page.get_by_label("Betrag", exact=True).fill("1500.00")
    page.locator("#payment-preview table").wait_for()
    shoot.both(page, "de-pay")
    page.goto("/credit")
    page.get_by_label("Jahr", exact=True).select_option(str(time.gmtime().tm_year + 1))
    page.get_by_label("Monat", exact=True).select_option("1")
    page.get_by_label("Betrag", exact=True).fill("100.00")
    page.get_by_label("ML-Modell-Score", exact=True).check()
    page.get_by_role("button", name="Kredit beantragen").click()
    page.wait_for_url(re.compile(r"/decisions/|/credit"))
    shoot.both(page, "de-credit-ml-decision")
    log_out(page, "de")
    log_in(page, "manager", 1, "manager123", "de")
    shoot.both(page, "de-manager-portfolio")
    page.goto("/manager/model")
    shoot.both(page, "de-manager-model")
    page.goto("/manager/admin/audit")
    shoot.both(page, "de-admin-audit")
    log_out(page, "de")


def workbench_pages(page, shoot: Camera) -> None:
    """The model workbench: a retrain followed live, the new version beside the champion, a promotion's confirmation."""
    log_in(page, "manager", 1, "manager123")
    page.goto("/manager/workbench")
    page.get_by_label("Seed (optional)").fill("7")  # the demo's champion used 42: another seed is a new version
    page.get_by_role("button", name="Start retraining").click()
    page.locator("#job-stages .stage-done").nth(1).wait_for()  # dataset and train done: a job under way
    shoot.both(page, "manager-workbench-job")
    page.locator("#job-state", has_text=re.compile("succeeded|failed")).wait_for(timeout=600_000)
    page.goto("/manager/workbench")
    shoot.both(page, "manager-workbench")
    page.get_by_role("button", name="Compare").click()
    page.locator(".plots img").first.wait_for()
    shoot.both(page, "manager-workbench-compare", at="#curves-h")
    page.goto("/manager/workbench/credit-approval/versions/2/promote")
    page.get_by_label("Reason", exact=True).fill("Better on the last quarter's applicants")
    shoot.both(page, "manager-workbench-promote")
    log_out(page)


def lowest_paid_customer(page) -> int:
    """Return the id of the customer with the lowest paid share (the portfolio sorted by it), as the manager."""
    log_in(page, "manager", 1, "manager123")
    page.goto("/manager?sort=paid_pct&order=asc")
    customer_id = int(page.locator("#portfolio tbody tr td").first.inner_text())
    log_out(page)
    return customer_id


def take_all(base_url: str, out: Path, only: str | None = None) -> list[str]:
    """Drive Chromium through every page of the running demo (or only the German ones); return the files written."""
    shoot = Camera(out)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=SIZES["desktop"], base_url=base_url)
        context.set_default_timeout(60_000)  # the first ML decision and replay load the model
        page = context.new_page()
        if only != "de":
            low = lowest_paid_customer(page)
            customer_pages(page, shoot)
            rejected_pages(page, shoot, low)
            overpay(page, 102)
            manager_pages(page, shoot, refund_customer=102)
            workbench_pages(page, shoot)
        german_pages(page, shoot)  # last: it leaves customer 101 and manager 1 with German chosen
        browser.close()
    return shoot.written


def main(argv: list[str] | None = None) -> int:
    """Run the demo, take every screenshot, stop the demo."""
    parser = argparse.ArgumentParser(prog="python -m deploy.screenshots", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=SHOTS, help="where the PNGs go (default docs/screenshots/)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for make run (default 900)")
    parser.add_argument("--only", choices=["de"], help="take only the German pictures (de-*.png), keep the others")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"!! {CHROMIUM} is missing (make browser-deps installs Debian's Chromium)")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="screenshots-"))
    demo = Demo(workdir)
    try:
        demo.start(args.timeout)
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("de-*.png" if args.only else "*.png"):
            old.unlink()
        written = take_all(demo.url, args.out, args.only)
    finally:
        demo.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {len(written)} screenshots to {args.out}:")
    for name in written:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
