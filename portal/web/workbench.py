"""The model workbench pages (managers): versions, comparison, promotion history, promote, roll back, retrain.

Everything comes from the workbench service through ``portal.workbench_service``;
the portal holds no model code. Promote and roll back take a required reason
and a confirmation step that shows the gate's evidence; the page remembers the
champion it showed, so a move made meanwhile by someone else is refused rather
than overridden. Retrain jobs run in the service; their page follows them with
a small same-origin script (and a plain reload link without it).
"""
from __future__ import annotations

import base64
from collections.abc import Callable

from flask import Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.web.auth import login_required
from portal.web.forms import FORM_EXPIRED, ActionForm, ReasonForm, RetrainForm
from portal.workbench_service import WorkbenchRefused, WorkbenchService, WorkbenchUnavailable

bp = Blueprint("web_workbench", __name__, url_prefix="/manager/workbench")


def _service() -> WorkbenchService:
    return current_app.extensions["workbench"]


def _who() -> str:
    return f"manager {current_user.user_id}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:].rstrip(".") + "."


def _refused(exc: WorkbenchRefused):
    """Turn the service's 404 into the page's 404; other refusals are for the form to show."""
    if exc.status == 404:
        abort(404, description=_sentence(exc.message))


def _or_abort(call, *args):
    """Call the service; a refusal (an unknown version or job, a bad value) becomes the page's 404 or 400."""
    try:
        return call(*args)
    except WorkbenchRefused as exc:
        _refused(exc)
        abort(400, description=_sentence(exc.message))


def _confirmed(form: ReasonForm, move: Callable[[str], Response]) -> tuple[Response | None, str | None, int]:
    """Make a registry move once its reason form validates: its redirect, or the refusal to show and the status."""
    if form.validate_on_submit():
        try:
            return move(form.reason.data.strip()), None, 200
        except WorkbenchRefused as exc:
            _refused(exc)
            return None, _sentence(exc.message), exc.status
    return None, None, 422 if form.is_submitted() else 200


@bp.errorhandler(WorkbenchUnavailable)
def unavailable(exc: WorkbenchUnavailable):
    """Say clearly that the workbench service is down, and how to start it."""
    return render_template("manager/workbench/unavailable.html", message=exc.message,
                           url=current_app.config["WORKBENCH_URL"]), 503


def _svg_data(svg: str | None) -> str | None:
    """Return an SVG document as a data: URL for an <img> (the CSP allows data: images, not inline styles)."""
    return None if not svg else "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


@bp.route("")
@login_required("manager")
def index():
    """Show a model's versions, the promotion history, the compare form and the retrain jobs."""
    service = _service()
    names = service.models()
    name = request.args.get("model") or names["default"]
    if name not in names["models"]:
        abort(404, description=_("No registered model %(model)s.", model=name))
    model = service.model(name)
    versions = [v["version"] for v in model["versions"]]
    challenger = next((v for v in versions if v != model["champion"]), None)
    return render_template("manager/workbench/index.html", names=names["models"], model=model, jobs=service.jobs(),
                           compare_a=model["champion"] or (versions[0] if versions else None),
                           compare_b=challenger, retrain_form=RetrainForm(),
                           mlflow_ui=current_app.config.get("MLFLOW_UI_URL"))


@bp.route("/compare")
@login_required("manager")
def compare():
    """Show two versions side by side: metrics, curves, rates at the threshold, the reasons profile."""
    name, a, b = request.args.get("model", ""), request.args.get("a", ""), request.args.get("b", "")
    found = _or_abort(_service().compare, name, a, b)
    plots = {k: _svg_data(v) for k, v in found["plots"].items()}
    return render_template("manager/workbench/compare.html", c=found, plots=plots, a=a, b=b)


@bp.route("/<string:name>/versions/<string:version>/promote", methods=["GET", "POST"])
@login_required("manager")
def promote(name, version):
    """Confirm, with a reason, that a version becomes the champion; show its gate evidence first."""
    service = _service()
    found = _or_abort(service.version, name, version)
    form = ReasonForm()
    if request.method == "GET":
        form.champion.data = found["model"]["champion"] or ""

    def move(reason: str) -> Response:
        moved = service.promote(name, version, reason=reason, who=_who(), expected_champion=form.champion.data or None)
        flash(_("%(model)s: version %(version)s is the champion now (was %(previous)s).", model=name,
                version=version, previous=moved["previous"] or _("none"))
              if moved["changed"] else _("%(model)s: version %(version)s was already the champion.", model=name,
                                         version=version), "success")
        return redirect(url_for("web_workbench.index", model=name))

    done, error, status = _confirmed(form, move)
    if done:
        return done
    return render_template("manager/workbench/promote.html", found=found, form=form, error=error), status


@bp.route("/<string:name>/rollback", methods=["GET", "POST"])
@login_required("manager")
def rollback(name):
    """Confirm, with a reason, that the champion alias goes back to the previous champion."""
    service = _service()
    model = _or_abort(service.model, name)
    target = service.version(name, model["rollback_to"]) if model["rollback_to"] else None
    form = ReasonForm()
    if request.method == "GET":
        form.champion.data = model["champion"] or ""

    def move(reason: str) -> Response:
        moved = service.rollback(name, reason=reason, who=_who(), expected_champion=form.champion.data or None)
        flash(_("%(model)s: rolled back to version %(version)s (was %(previous)s).", model=name,
                version=moved["champion"], previous=moved["previous"]), "success")
        return redirect(url_for("web_workbench.index", model=name))

    done, error, status = _confirmed(form, move)
    if done:
        return done
    return render_template("manager/workbench/rollback.html", model=model, target=target, form=form,
                           error=error), status


@bp.route("/<string:name>/versions/<string:version>/challenge", methods=["GET", "POST"])
@login_required("manager")
def challenge(name, version):
    """Confirm, with a reason, that a version becomes the challenger: scored in the shadow of every live decision."""
    service = _service()
    found = _or_abort(service.version, name, version)
    form = ReasonForm()

    def move(reason: str) -> Response:
        service.challenge(name, version, reason=reason, who=_who())
        flash(_("%(name)s: version %(version)s is the challenger now: serving scores it in the shadow of every "
                "ML decision.", name=name, version=version), "success")
        return redirect(url_for("web_shadow.shadow"))

    done, error, status = _confirmed(form, move)
    if done:
        return done
    return render_template("manager/workbench/challenge.html", found=found, form=form, error=error), status


@bp.route("/jobs", methods=["POST"])
@login_required("manager")
def start_job():
    """Start a retrain job, then follow it on its page; one at a time."""
    form = RetrainForm()
    if not form.validate_on_submit():
        flash(_("The retrain form was not valid: %(errors)s",
                errors="; ".join(str(e) for errors in form.errors.values() for e in errors)), "error")
        return redirect(url_for("web_workbench.index"))
    try:
        job = _service().start_job(who=_who(), seed=int(form.seed.data) if form.seed.data else None,
                                   promote=bool(form.promote.data))
    except WorkbenchRefused as exc:
        flash(_sentence(exc.message), "error")
        return redirect(url_for("web_workbench.index"))
    return redirect(url_for("web_workbench.job", job_id=job["id"]))


@bp.route("/jobs/<string:job_id>")
@login_required("manager")
def job(job_id):
    """Show a retrain job: its stages, its log, its new version and gate verdict, or its error."""
    found = _or_abort(_service().job, job_id)
    return render_template("manager/workbench/job.html", job=found, cancel_form=ActionForm())


@bp.route("/jobs/<string:job_id>/status")
@login_required("manager")
def job_status(job_id):
    """Answer the job page's script: the job's state, stages and log (JSON)."""
    found = _or_abort(_service().job, job_id)
    return jsonify({k: found[k] for k in ("state", "stages", "log")})


@bp.route("/jobs/<string:job_id>/cancel", methods=["POST"])
@login_required("manager")
def cancel_job(job_id):
    """Cancel a running retrain job."""
    if not ActionForm().validate_on_submit():
        abort(400, description=FORM_EXPIRED)
    try:
        _service().cancel_job(job_id, who=_who())
    except WorkbenchRefused as exc:
        _refused(exc)
        flash(_sentence(exc.message), "error")
    else:
        flash(_("Job %(job)s cancelled.", job=job_id), "success")
    return redirect(url_for("web_workbench.job", job_id=job_id))
