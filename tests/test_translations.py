"""Every text a person reads is in the catalogue, and every message of the catalogue is translated.

* The templates (pages, emails) hold no words outside ``_()`` / ``{% trans %}``: the text
  between the tags, the attributes people read (``aria-label``, ``title``, ``data-label``...)
  and the string literals of Jinja expressions are checked after the translated parts are taken out.
* The code's flash messages and error pages' texts go through gettext.
* The catalogue (``portal/translations/<lang>/LC_MESSAGES/messages.po``) holds every message
  ``pybabel extract`` finds today, each translated and none fuzzy, and the committed ``.mo`` is
  the compiled ``.po``.
"""
from __future__ import annotations

import ast
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from jinja2 import Environment

from portal.languages import LANGUAGES
from portal.mail import outbox, render
from portal.models import Customer, Manager
from portal.refusals import NUMBER, REFUSALS, said
from tests.factories import web_login

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "portal" / "templates"
TRANSLATIONS = ROOT / "portal" / "translations"
SECOND_LANGUAGES = [code for code in LANGUAGES if code != "en"]
# Attributes whose value a person reads or hears (data-label: the stacked tables' cell labels on phones,
# data-busy: the text shown while a form is being sent).
READ_ATTRIBUTES = {"aria-label", "title", "alt", "placeholder", "data-label", "data-busy"}
GETTEXT = {"_", "gettext", "ngettext", "_l", "lazy_gettext", "pgettext"}
CODE_WORDS = {"GET", "POST"}  # string literals that are compared, never shown
CODE_ARGUMENTS = {"class_", "autocomplete", "inputmode", "type"}  # a form field's HTML attributes
NO_WORDS = re.compile(r"^[\W\d_]*$")  # numbers, punctuation and symbols only


class _Text(HTMLParser):
    """Collect the text nodes and the read attributes of an HTML (or plain text) document."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.code = 0  # inside <code>: a command or a name, the same in every language

    def handle_starttag(self, tag, attrs):
        self.found += [value for name, value in attrs if name in READ_ATTRIBUTES and value]
        self.code += tag == "code"

    def handle_endtag(self, tag):
        self.code -= tag == "code"

    def handle_data(self, data):
        if not self.code:
            self.found.append(data)


def _untranslated(source: str) -> list[str]:
    """Return the words of a template that are outside the catalogue."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    html, literals = [], []
    in_trans, in_block, calls = False, False, []
    tokens = list(env.lex(source))
    for i, (_line, kind, value) in enumerate(tokens):
        if kind == "block_begin":
            in_block = True
            keyword = next((v for _l, k, v in tokens[i + 1:i + 3] if k == "name"), None)
            in_trans = {"trans": True, "pluralize": True, "endtrans": False}.get(keyword, in_trans)
        elif kind in ("block_end", "variable_end"):
            in_block = False
            html.append(" ")
        elif kind == "variable_begin":
            html.append(" ")
        elif kind == "data" and not in_trans and not in_block:
            html.append(value)
        elif kind == "name" and value in GETTEXT and tokens[i + 1][2] == "(":
            calls.append(0)
        elif kind == "operator" and value == "(" and calls:
            calls[-1] += 1
        elif kind == "operator" and value == ")" and calls:
            calls[-1] -= 1
            if calls[-1] == 0:
                calls.pop()
        elif (kind == "string" and not calls and not in_trans and value.strip("'\"") not in CODE_WORDS
              and tokens[i - 2][2] not in CODE_ARGUMENTS and re.search(r"[A-Z]|[a-z] [a-z]", value)):
            literals.append(value)  # a sentence or a capitalised word in an expression, outside _()
    parser = _Text()
    parser.feed("".join(html))
    parser.close()
    texts = [" ".join(w for w in t.split() if not w.startswith("/")) for t in parser.found]  # paths of links
    return [t for t in texts if not NO_WORDS.match(t)] + literals


def _templates():
    return sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*") if p.suffix in (".html", ".txt"))


@pytest.mark.parametrize("name", _templates())
def test_a_template_holds_no_words_outside_the_catalogue(name):
    found = _untranslated((TEMPLATES / name).read_text())
    assert not found, f"{name}: words outside _() or {{% trans %}}: {found}"


def test_the_template_check_finds_words_outside_the_catalogue():
    source = ('<h1>{{ _("Hello") }}</h1><p>Plain words</p><button aria-label="Close">×</button>'
              '{% trans n=1 %}In a block {{ n }}{% endtrans %}{{ "Go back" if x else _("Stay here") }} 1,234.5')
    assert _untranslated(source) == ["Plain words", "Close", '"Go back"']


def _calls(path: Path):
    tree = ast.parse(path.read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _is_gettext(node) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", None) in GETTEXT


def _said_to_people(call: ast.Call) -> list[ast.expr]:
    """Return the arguments of a call that become text on a page: flash(text), abort(..., description=text)."""
    name = getattr(call.func, "id", None) or getattr(call.func, "attr", None)
    if name == "flash":
        return call.args[:1]
    if name == "abort":
        return [k.value for k in call.keywords if k.arg == "description"]
    return [k.value for k in call.keywords if k.arg in ("error", "detail")] if name == "render_template" else []


@pytest.mark.parametrize("path", sorted((ROOT / "portal" / "web").glob("*.py")), ids=lambda p: p.name)
def test_the_pages_code_says_nothing_outside_the_catalogue(path):
    plain = [f"{path.name}:{arg.lineno}" for call in _calls(path) for arg in _said_to_people(call)
             if isinstance(arg, (ast.Constant, ast.JoinedStr))]
    assert not plain, f"texts for people that are not gettext calls: {plain}"


def _extracted() -> set[str]:
    """Run the extraction ``make translations`` runs (babel.cfg) and return the message ids."""
    method_map, options_map = [], {}
    section = None
    for line in (ROOT / "babel.cfg").read_text().splitlines():
        line = line.strip()
        if match := re.fullmatch(r"\[(\w+):\s*(.+)\]", line):
            section = match.group(2)
            method_map.append((section, match.group(1)))
            options_map[section] = {}
        elif "=" in line and section:
            key, value = (part.strip() for part in line.split("=", 1))
            options_map[section][key] = value
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords={"_": None, "gettext": None, "ngettext": (1, 2),
                                                          "_l": None, "lazy_gettext": None}):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


@pytest.mark.parametrize("language", SECOND_LANGUAGES)
def test_every_message_is_in_the_catalogue_and_translated(language):
    with open(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", "rb") as handle:
        catalog = read_po(handle)
    messages = [m for m in catalog if m.id]
    missing = sorted(_extracted() - {m.id if isinstance(m.id, str) else m.id[0] for m in messages})
    assert not missing, f"not in the {language} catalogue (run make translations, then translate): {missing}"
    untranslated = [m.id for m in messages
                    if not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    assert not untranslated, f"untranslated in {language}: {untranslated}"
    fuzzy = [m.id for m in messages if m.fuzzy]
    assert not fuzzy, f"fuzzy (check and clear the flag) in {language}: {fuzzy}"


@pytest.mark.parametrize("language", SECOND_LANGUAGES)
def test_the_committed_mo_is_the_compiled_po(language):
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    with open(folder / "messages.po", "rb") as handle:
        po = read_po(handle)
    with open(folder / "messages.mo", "rb") as handle:
        mo = read_mo(io.BytesIO(handle.read()))
    def strings(catalog):
        def text(value):
            return " | ".join(value) if isinstance(value, (list, tuple)) else value
        return {text(m.id): text(m.string) for m in catalog if m.id}

    assert strings(mo) == strings(po), "run make translations to compile the .mo"


# --------------------------------------------------------------------------- choosing the language

def _words(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text.replace("<wbr>", "")))


def _choose(client, language: str, page: str = "/"):
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(page).text).group(1)
    return client.post("/language", data={"csrf_token": token, "language": language, "next": page})


def test_english_without_a_choice_and_the_browsers_language_otherwise(client, ledger):
    assert "Your credit account, in one place" in _words(client.get("/"))
    page = client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert "Ihr Kreditkonto an einem Ort" in _words(page) and '<html lang="de">' in page.text
    assert "Accept-Language" in page.headers["Vary"]  # a shared cache keeps one copy per language
    assert "Your credit account" in _words(client.get("/", headers={"Accept-Language": "fr-FR"}))


def test_the_switcher_needs_its_csrf_token_and_a_known_language(client, ledger):
    assert client.post("/language", data={"language": "de"}).status_code == 400
    assert _choose(client, "xx").status_code == 400
    assert "Your credit account" in _words(client.get("/"))


def test_the_choice_beats_the_browser_and_stays_through_login_and_logout(client, ledger):
    answer = _choose(client, "de", "/customer/login")
    assert answer.status_code == 302 and answer.headers["Location"] == "/customer/login"
    assert "Kundenanmeldung" in _words(client.get("/customer/login", headers={"Accept-Language": "en"}))
    assert web_login(client, "customer", 101, "customer123").status_code == 302
    page = _words(client.get("/customers/101?year=2024"))
    assert "Monatliche Fälligkeiten in 2024" in page and "100,00 $" in page  # German words and numbers
    with ledger.sessions() as s:
        assert s.get(Customer, 101).language == "de"  # remembered on the person: their emails too
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/pay").text).group(1)
    client.post("/logout", data={"csrf_token": token})
    assert "Sie haben sich abgemeldet." in _words(client.get("/"))


def test_a_person_gets_their_stored_language_at_login_on_a_new_browser(app, ledger):
    first, second = app.test_client(), app.test_client()
    web_login(first, "manager", 1, "manager123")
    _choose(first, "de", "/manager")
    with ledger.sessions() as s:
        assert s.get(Manager, 1).language == "de"
    web_login(second, "manager", 1, "manager123")
    assert "Ihre Angaben" in _words(second.get("/manager"))
    _choose(second, "en", "/manager")
    assert "Your details" in _words(second.get("/manager"))


def test_flash_messages_errors_and_the_pdf_are_in_the_chosen_language(client, ledger):
    _choose(client, "de")
    web_login(client, "customer", 101, "customer123")
    assert "Seite nicht gefunden" in _words(client.get("/payments/999999"))
    pdf = client.get("/customers/101/statement.pdf?year=2024")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    title = "Kontoauszug für Kunde 101".encode("utf-16-be").hex()  # the document's title, as fpdf2 writes it
    assert f"/Title <feff{title}>".encode() in pdf.data
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/pay").text).group(1)
    key = re.search(r'name="idempotency_key"[^>]*value="([^"]+)"', client.get("/pay").text).group(1)
    refused = client.post("/pay", data={"csrf_token": token, "idempotency_key": key, "year": "2024", "month": "1",
                                        "amount": "abc"})
    said = "Betrag: muss eine Dezimalzahl mit höchstens zwei Nachkommastellen wie „1250.00“ sein"
    assert refused.status_code == 422 and said in _words(refused)


def test_an_email_is_written_in_the_customers_language(app, ledger):
    with ledger.sessions() as s, s.begin():
        customer = s.get(Customer, 101)
        customer.language, customer.email = "de", "anna@example.com"
        message = outbox.enqueue(s, customer, "payment_received", {
            "payment_id": 7, "year": 2024, "month": 3, "amount_cents": 123_456,
            "allocations": [{"year": 2024, "month": 3, "amount_cents": 123_456}], "to_bank_credit_cents": 0,
            "balance_cents": 0, "bank_credit_cents": 0})
    with app.app_context():
        words = render.render(message)
    assert words.subject == "Zahlung eingegangen: 1.234,56 $"  # the subject's spaces are plain ones
    assert "Wir haben Ihre Zahlung über 1.234,56\xa0$ erhalten (Zahlung #7), verrechnet ab März 2024." in words.text
    assert '<html lang="de">' in words.html and "Guten Tag" in words.html


def test_a_rejection_email_says_its_reasons_in_the_customers_language(app, ledger):
    with ledger.sessions() as s, s.begin():
        customer = s.get(Customer, 101)
        customer.language = "de"
        message = outbox.enqueue(s, customer, "credit_rejected", {
            "request_id": "r", "year": 2030, "month": 2, "amount_cents": 50_000, "method": "percentage",
            "score": 90.0, "threshold": 80.0,
            "reasons": [{"code": "over_limit", "text": "The amount is more than your available credit"}],
            "decision": {"approved": False, "score": 90.0, "threshold": 80.0, "amount": 50_000,
                         "credit_limit": 120_000, "exposure": 100_000, "available_credit": 20_000}})
    with app.app_context():
        words = render.render(message)
    assert words.subject == "Kreditantrag nicht bewilligt"
    text = " ".join(words.text.split())
    assert "Ihr Antrag über 500,00 $ Kredit für Februar 2030 (Prozentmethode) wurde nicht bewilligt" in text
    assert "Der Betrag ist höher als Ihr verfügbarer Kredit von 200,00 $ (Ihr Limit ist 1.200,00 $" in text


# --------------------------------------------------------------------------- the ledger's refusals on pages

def test_a_refusal_is_translated_with_its_numbers(app):
    with app.test_request_context(headers={"Accept-Language": "de"}):
        assert said("amount must be at most 1000000.00") == "der Betrag darf höchstens 1000000.00 sein"
        assert said("Month must be between 1 and 12") == "Der Monat muss zwischen 1 und 12 liegen"
        assert said("the ML method needs dues in each of the last five complete years (2021, 2022, 2023, "
                    "2024, 2025); none in 2021, 2022. Use the percentage method.") == (
            "die ML-Methode braucht Fälligkeiten in jedem der letzten fünf vollständigen Jahre (2021, 2022, "
            "2023, 2024, 2025); keine in 2021, 2022. Nutzen Sie die Prozentmethode.")
        assert said("something nobody wrote down") == "something nobody wrote down"
    with app.test_request_context():
        assert said("amount must be at most 1000000.00") == "amount must be at most 1000000.00"


REFUSING = {"NotFound", "Conflict", "InvalidRequest", "LedgerError", "ServiceUnavailable", "MoneyError"}
# Filled with words, not numbers: REFUSALS lists each filled form ("no such manager", "... percentage, ml").
WORD_VALUED = {"no such %(1)s", "method must be one of %(1)s"}


def _refusal_text(node) -> str | None:
    """Return a raise site's message with every value as a number, else None (not a string)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr):
        text = "".join(v.value if isinstance(v, ast.Constant) else "7" for v in node.values)
    elif isinstance(node, ast.BinOp):  # "..." "..." f"..." joined by +
        left, right = _refusal_text(node.left), _refusal_text(node.right)
        return None if left is None or right is None else left + right
    else:
        return None
    return text


def test_every_refusal_a_page_can_show_is_in_the_catalogue():
    known = {str(message._args[0]) for message in REFUSALS}
    missing = []
    for path in sorted((ROOT / "portal").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args and \
                    getattr(node.exc.func, "id", None) in REFUSING:
                text = _refusal_text(node.exc.args[0])
                if text is None:
                    continue
                if node.exc.func.id == "ServiceUnavailable":
                    # The credit page shows it without its prefix and its technical "(...)" (web/customer.py).
                    text = re.sub(r"\s*\([^)]*\)$", "", text.removeprefix("ML method unavailable: "))
                numbers = iter(range(1, 100))
                template = NUMBER.sub(lambda _m, n=numbers: f"%({next(n)})s", text)  # as said() looks it up
                if template not in known | WORD_VALUED:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {template}")
    assert not missing, f"refusals without a template in portal/refusals.py: {missing}"
