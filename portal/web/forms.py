"""The pages' forms: every one a FlaskForm, so every one carries and checks a CSRF token."""
from __future__ import annotations

import calendar

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

MONTHS = [SelectChoice(m, calendar.month_name[m]) for m in range(1, 13)]
AMOUNT_HINT = "For example 1250.00 (at most two decimals)"


class LoginForm(FlaskForm):
    # Named `id` because the login rate limit keys on the form's `id` (extensions.login_id_key).
    id = StringField("ID", validators=[InputRequired("Enter your ID"),
                                       Regexp(r"^[1-9][0-9]{0,15}$", message="An ID is a number, such as 101")])
    password = PasswordField("Password", validators=[InputRequired("Enter your password"), Length(max=200)])


class ActionForm(FlaskForm):
    """A form with no fields: a button that writes (log out) still needs its CSRF token."""


class PayForm(FlaskForm):
    year = SelectField("Year", coerce=int)
    month = SelectField("Month", coerce=int, choices=MONTHS)
    amount = StringField("Amount", validators=[InputRequired("Enter an amount")], description=AMOUNT_HINT)
    # Made when the form is shown: a second submit of the same form is the same payment.
    idempotency_key = HiddenField(validators=[Regexp(r"^web-[0-9a-f]{32}$", message="expired form")])
    # "Show where it goes" without paying (the script shows the same as the customer types).
    preview = SubmitField("Show where it goes")


class CreditForm(FlaskForm):
    year = SelectField("Year", coerce=int)
    month = SelectField("Month", coerce=int, choices=MONTHS)
    amount = StringField("Amount", validators=[InputRequired("Enter an amount")], description=AMOUNT_HINT)
    method = RadioField("Method", default="percentage", choices=[
        SelectChoice("percentage", "Percentage of dues paid"), SelectChoice("ml", "ML model score")])
    # As for payments: a second submit of the same form gets the first decision, not a second credit.
    idempotency_key = HiddenField(validators=[Regexp(r"^web-[0-9a-f]{32}$", message="expired form")])


def year_choices(years) -> list[SelectChoice]:
    """Offer years as select options."""
    return [SelectChoice(y, str(y)) for y in years]


class PortfolioSearch(FlaskForm):
    class Meta:
        csrf = False  # a GET search changes nothing

    q = StringField("Search by ID or name", validators=[Optional(), Length(max=120)])


class CustomerForm(FlaskForm):
    id = StringField("ID (optional)", description="Leave empty to take the next free ID")
    name = StringField("Name", validators=[DataRequired("Enter a name")])
    email = StringField("Email (optional)")
    age = StringField("Age (optional)")
    phone = StringField("Phone (optional)")
    password = PasswordField("Password", description="At least 8 characters")


class PasswordForm(FlaskForm):
    password = PasswordField("New password", description="At least 8 characters")


class RefundForm(FlaskForm):
    amount = StringField("Amount to refund", validators=[InputRequired("Enter an amount")], description=AMOUNT_HINT)
    reason = TextAreaField("Reason", description="Recorded with the refund; the customer sees it")


class ReversalForm(FlaskForm):
    reason = TextAreaField("Reason", description="Recorded with the reversal; the customer sees it")


class ManagerForm(FlaskForm):
    id = StringField("ID (optional)", description="Leave empty to take the next free manager ID")
    name = StringField("Name", validators=[DataRequired("Enter a name")])
    email = StringField("Email (optional)")
    phone = StringField("Phone (optional)")
    password = PasswordField("Password", description="At least 8 characters")


class ContactForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Enter a name")])
    email = StringField("Email", description="Where the customer's emails go; leave empty for none")
    phone = StringField("Phone (optional)")


class ReasonForm(FlaskForm):
    """Promote or roll back the model: a required reason, and the champion the page showed (a move since refuses)."""

    reason = TextAreaField("Reason", validators=[DataRequired("Enter a reason: it goes into the registry's audit log"),
                                                 Length(max=1000)],
                           description="Recorded in the registry's audit log with your name and the gate's evidence")
    champion = HiddenField()


class RetrainForm(FlaskForm):
    seed = StringField("Seed (optional)", validators=[Optional(), Regexp(r"^[0-9]{1,9}$", message="A whole number")],
                       description="Another seed splits and fits differently; the same data and seed are not "
                                   "registered twice")
    promote = BooleanField("Let the gate promote the new version when it passes (as make train does)", default=True)
