"""The workbench's JSON endpoints: models and versions, comparison, history, promote, roll back, challenge, jobs.

Every endpoint but ``/health`` demands the shared ``SERVING_TOKEN`` as a bearer
token and signs its answer with it (``contracts.signing``), as serving does:
the portal is its only client. Bad input is a 400 naming the field, and
writes nothing.
"""
from __future__ import annotations

import hmac
import re

from flask import Blueprint, Response, current_app, jsonify, request

import model_registry
from contracts.signing import SIGNATURE_HEADER, signature
from model_registry import evidence
from pipeline.workbench import catalog
from pipeline.workbench.compare import compare
from pipeline.workbench.jobs import JobError, JobStore

bp = Blueprint("workbench", __name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
VERSION = re.compile(r"^[1-9][0-9]{0,8}$")
MAX_REASON = 1000
MAX_WHO = 200
MAX_SEED = 2**31 - 1
OPEN_ENDPOINTS = {"workbench.health"}


class BadRequest(Exception):
    """Input the workbench refuses: ``status``, a message and the field it names."""

    def __init__(self, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


@bp.errorhandler(BadRequest)
def bad_request(exc: BadRequest):
    """Answer refused input as JSON naming the field."""
    return jsonify({"error": exc.message, "field": exc.field}), exc.status


@bp.errorhandler(JobError)
def job_error(exc: JobError):
    """Answer a job that cannot be started or cancelled now (409) or is unknown (404)."""
    return jsonify({"error": exc.message, "field": exc.field}), exc.status


@bp.before_app_request
def require_token():
    """Refuse every call but /health without the shared token (401)."""
    token = current_app.config.get("SERVING_TOKEN")
    if not token or request.endpoint in OPEN_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        return jsonify({"error": "a valid bearer token (SERVING_TOKEN) is required", "field": None}), 401
    return None


@bp.after_app_request
def sign(response: Response) -> Response:
    """Sign every answer but /health's with the shared token, so the portal can tell it is ours."""
    token = current_app.config.get("SERVING_TOKEN")
    if token and request.endpoint not in OPEN_ENDPOINTS:
        response.headers[SIGNATURE_HEADER] = signature(token, response.get_data())
    return response


def _uri() -> str:
    return current_app.config["MLFLOW_TRACKING_URI"]


def _jobs() -> JobStore:
    return current_app.extensions["workbench_jobs"]


def _name(name: str) -> str:
    if not NAME.match(name):
        raise BadRequest("a model name is letters, digits, '.', '_' or '-'", "name")
    return name


def _version(value) -> str:
    text = str(value if value is not None else "").strip()
    if not VERSION.match(text):
        raise BadRequest("a version is a whole number such as 3", "version")
    return text


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", "body")
    return body


def _text(body: dict, field: str, limit: int) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{field} is required", field)
    if len(value) > limit or any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise BadRequest(f"{field} must be plain text of at most {limit} characters", field)
    return value.strip()


def _expected(body: dict, model: dict) -> None:
    """Refuse a move decided on a champion that has changed since the page showed it (409)."""
    if "expected_champion" in body and str(body["expected_champion"] or "") != str(model["champion"] or ""):
        raise BadRequest(f"the champion is now version {model['champion']}: look at the page again",
                         "expected_champion", 409)


@bp.route("/health")
def health():
    """Say the service runs (open: no token)."""
    return jsonify({"ok": True})


@bp.route("/v1/models")
def models():
    """List the registered models (credit-approval first)."""
    names = evidence.model_names(_uri())
    if model_registry.MODEL_NAME not in names:
        names.insert(0, model_registry.MODEL_NAME)
    return jsonify({"models": names, "default": model_registry.MODEL_NAME})


@bp.route("/v1/models/<name>")
def model(name):
    """Return a model's versions, champion, rollback target and promotion history."""
    return jsonify(catalog.model(_name(name), _uri()))


@bp.route("/v1/models/<name>/versions/<number>")
def version(name, number):
    """Return one version with its gate evidence."""
    try:
        return jsonify(catalog.version(_name(name), _version(number), _uri()))
    except model_registry.RegistryError as exc:
        raise BadRequest(str(exc), "version", 404) from exc


@bp.route("/v1/models/<name>/compare")
def compare_versions(name):
    """Compare two versions: ``?a=1&b=2``."""
    name = _name(name)
    wanted = []
    for field in ("a", "b"):
        try:
            wanted.append(_version(request.args.get(field)))
        except BadRequest as exc:
            raise BadRequest(exc.message, field) from exc
    described = {v["version"]: v for v in model_registry.describe(name, _uri())["versions"]}
    for field, number in zip(("a", "b"), wanted):
        if number not in described:
            raise BadRequest(f"{name} has no version {number}", field, 404)
    return jsonify(compare(name, [described[n] for n in wanted], _uri()))


@bp.route("/v1/models/<name>/promote", methods=["POST"])
def promote(name):
    """Give a version the champion alias with a reason and its gate evidence (``model_registry.promote``)."""
    name, body = _name(name), _body()
    number = _version(body.get("version"))
    why, who = _text(body, "reason", MAX_REASON), _text(body, "who", MAX_WHO)
    try:
        found = catalog.version(name, number, _uri())
    except model_registry.RegistryError as exc:
        raise BadRequest(str(exc), "version", 404) from exc
    _expected(body, found["model"])
    moved = model_registry.promote(number, who=who, why=why, evidence=found["version"]["gate_text"], name=name,
                                   tracking_uri=_uri())
    return jsonify(moved)


@bp.route("/v1/models/<name>/rollback", methods=["POST"])
def rollback(name):
    """Give the alias back to the previous champion, with a reason (``model_registry.rollback``)."""
    name, body = _name(name), _body()
    why, who = _text(body, "reason", MAX_REASON), _text(body, "who", MAX_WHO)
    _expected(body, catalog.model(name, _uri()))
    try:
        moved = model_registry.rollback(who=who, why=why, name=name, tracking_uri=_uri())
    except model_registry.RegistryError as exc:
        raise BadRequest(str(exc), "model", 409) from exc
    return jsonify(moved)


@bp.route("/v1/models/<name>/challenge", methods=["POST"])
def challenge(name):
    """Give a version the challenger alias (serving scores it in the shadow), or clear it with version null."""
    name, body = _name(name), _body()
    number = None if body.get("version") is None else _version(body.get("version"))
    why, who = _text(body, "reason", MAX_REASON), _text(body, "who", MAX_WHO)
    try:
        moved = model_registry.challenge(number, who=who, why=why, name=name, tracking_uri=_uri())
    except model_registry.RegistryError as exc:
        raise BadRequest(str(exc), "version", 404 if "has no version" in str(exc) else 409) from exc
    return jsonify(moved)


@bp.route("/v1/jobs")
def jobs():
    """List the retrain jobs, newest first, and the one running now."""
    listed = _jobs().list()
    return jsonify({"jobs": listed, "running": next((j["id"] for j in listed if j["state"] == "running"), None)})


@bp.route("/v1/jobs", methods=["POST"])
def start_job():
    """Start a retrain job (``python -m pipeline.run``); 409 while another runs."""
    body = _body()
    who = _text(body, "who", MAX_WHO)
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
        raise BadRequest(f"seed is a whole number from 0 to {MAX_SEED}", "seed")
    promote_when_passed = body.get("promote", True)
    if not isinstance(promote_when_passed, bool):
        raise BadRequest("promote is true or false", "promote")
    return jsonify(_jobs().start(who=who, seed=seed, promote=promote_when_passed)), 202


@bp.route("/v1/jobs/<job_id>")
def job(job_id):
    """Return a job: state, stages, the end of its log, its outcome or its error."""
    return jsonify(_jobs().get(job_id))


@bp.route("/v1/jobs/<job_id>/cancel", methods=["POST"])
def cancel_job(job_id):
    """Cancel a running job (its whole process group)."""
    return jsonify(_jobs().cancel(job_id, who=_text(_body(), "who", MAX_WHO)))
