"""The pages' forms: every one a FlaskForm, so every one carries and checks a CSRF token."""
from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp

from portal.languages import LANGUAGES
from portal.web.formats import month_name

# Month names in the page's language, looked up when the form is drawn.
MONTHS = [SelectChoice(m, LazyString(month_name, m)) for m in range(1, 13)]
AMOUNT_HINT = _l("For example 1250.00 (at most two decimals)")
# A form whose CSRF token is missing or stale (a page open too long, or not from this site).
FORM_EXPIRED = _l("The form has expired. Please reload the page and try again.")


class LoginForm(FlaskForm):
    # Named `id` because the login rate limit keys on the form's `id` (extensions.login_id_key).
    id = StringField(_l("ID"), validators=[InputRequired(_l("Enter your ID")),
                                           Regexp(r"^[1-9][0-9]{0,15}$", message=_l("An ID is a number, such as 101"))])
    password = PasswordField(_l("Password"), validators=[InputRequired(_l("Enter your password")), Length(max=200)])


class ActionForm(FlaskForm):
    """A form with no fields: a button that writes (log out) still needs its CSRF token."""


class LanguageForm(FlaskForm):
    """The language switcher: a button per language (its value), and the page to go back to."""

    language = SelectField(choices=list(LANGUAGES), validate_choice=True)
    next = HiddenField()


class PayForm(FlaskForm):
    year = SelectField(_l("Year"), coerce=int)
    month = SelectField(_l("Month"), coerce=int, choices=MONTHS)
    amount = StringField(_l("Amount"), validators=[InputRequired(_l("Enter an amount"))], description=AMOUNT_HINT)
    # Made when the form is shown: a second submit of the same form is the same payment.
    idempotency_key = HiddenField(validators=[Regexp(r"^web-[0-9a-f]{32}$", message=_l("expired form"))])
    # "Show where it goes" without paying (the script shows the same as the customer types).
    preview = SubmitField(_l("Show where it goes"))


class CreditForm(FlaskForm):
    year = SelectField(_l("Year"), coerce=int)
    month = SelectField(_l("Month"), coerce=int, choices=MONTHS)
    amount = StringField(_l("Amount"), validators=[InputRequired(_l("Enter an amount"))], description=AMOUNT_HINT)
    method = RadioField(_l("Method"), default="percentage", choices=[
        SelectChoice("percentage", _l("Percentage of dues paid")), SelectChoice("ml", _l("ML model score"))])
    # As for payments: a second submit of the same form gets the first decision, not a second credit.
    idempotency_key = HiddenField(validators=[Regexp(r"^web-[0-9a-f]{32}$", message=_l("expired form"))])


def year_choices(years) -> list[SelectChoice]:
    """Offer years as select options."""
    return [SelectChoice(y, str(y)) for y in years]


class PortfolioSearch(FlaskForm):
    class Meta:
        csrf = False  # a GET search changes nothing

    q = StringField(_l("Search by ID or name"), validators=[Optional(), Length(max=120)])


class CustomerForm(FlaskForm):
    id = StringField(_l("ID (optional)"), description=_l("Leave empty to take the next free ID"))
    name = StringField(_l("Name"), validators=[DataRequired(_l("Enter a name"))])
    email = StringField(_l("Email (optional)"))
    age = StringField(_l("Age (optional)"))
    phone = StringField(_l("Phone (optional)"))
    password = PasswordField(_l("Password"), description=_l("At least 8 characters"))


class PasswordForm(FlaskForm):
    password = PasswordField(_l("New password"), description=_l("At least 8 characters"))


class RefundForm(FlaskForm):
    amount = StringField(_l("Amount to refund"), validators=[InputRequired(_l("Enter an amount"))],
                         description=AMOUNT_HINT)
    reason = TextAreaField(_l("Reason"), description=_l("Recorded with the refund; the customer sees it"))


class ReversalForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), description=_l("Recorded with the reversal; the customer sees it"))


class ManagerForm(FlaskForm):
    id = StringField(_l("ID (optional)"), description=_l("Leave empty to take the next free manager ID"))
    name = StringField(_l("Name"), validators=[DataRequired(_l("Enter a name"))])
    email = StringField(_l("Email (optional)"))
    phone = StringField(_l("Phone (optional)"))
    password = PasswordField(_l("Password"), description=_l("At least 8 characters"))


class ContactForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(_l("Enter a name"))])
    email = StringField(_l("Email"), description=_l("Where the customer's emails go; leave empty for none"))
    phone = StringField(_l("Phone (optional)"))


class ReasonForm(FlaskForm):
    """Promote or roll back the model: a required reason, and the champion the page showed (a move since refuses)."""

    reason = TextAreaField(_l("Reason"),
                           validators=[DataRequired(_l("Enter a reason: it goes into the registry's audit log")),
                                       Length(max=1000)],
                           description=_l("Recorded in the registry's audit log with your name and the gate's "
                                          "evidence"))
    champion = HiddenField()


class RetrainForm(FlaskForm):
    seed = StringField(_l("Seed (optional)"),
                       validators=[Optional(), Regexp(r"^[0-9]{1,9}$", message=_l("A whole number"))],
                       description=_l("Another seed splits and fits differently; the same data and seed are not "
                                      "registered twice"))
    promote = BooleanField(_l("Let the gate promote the new version when it passes (as make train does)"),
                           default=True)
