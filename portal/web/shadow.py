"""The manager's shadow page: the champion and the challenger on the same live requests."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from portal.api.schemas import ShadowArgs
from portal.db import get_session
from portal.shadow_report import shadow_page
from portal.web.auth import login_required
from portal.web.chart import score_histograms
from portal.web.formdata import query_args

bp = Blueprint("web_shadow", __name__, url_prefix="/manager/model")


@bp.route("/shadow")
@login_required("manager")
def shadow():
    """Show approval rates, agreement, disagreements and score distributions of champion and challenger."""
    args = query_args(ShadowArgs())
    report = shadow_page(get_session(), current_app.extensions["decision_service"], args["champion"],
                         args["challenger"])
    chart = score_histograms(report["champion"]["score_histogram"], report["challenger"]["score_histogram"],
                             f"Scores of version {report['champion_version']} (champion) and "
                             f"{report['challenger_version']} (challenger) on the same requests")
    return render_template("manager/shadow.html", report=report, chart=chart)
