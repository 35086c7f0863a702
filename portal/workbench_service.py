"""The portal's client of the model workbench service (``pipeline/workbench``): the only way its pages reach it.

The workbench lists the registered models and versions, compares two
versions, moves the champion and challenger aliases (through ``model_registry``) and runs
retrain jobs; the portal never imports that code. As with the decision
service, every call carries the shared ``SERVING_TOKEN`` and every answer must
carry the service's HMAC signature of its body. A workbench that is down or
answers badly is a ``WorkbenchUnavailable`` (503, the pages say so); a request
it refuses (a missing reason, a job already running, an unknown version) is a
``WorkbenchRefused`` with its status, message and field.
"""
from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import requests

from contracts.signing import SIGNATURE_HEADER, verify


class WorkbenchUnavailable(Exception):
    """The workbench service cannot answer now (down, or an answer that is not its own)."""

    status = 503

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class WorkbenchRefused(Exception):
    """The workbench refused the request: ``status`` (400, 404, 409), its message and the field it names."""

    def __init__(self, message: str, status: int, field: str | None = None):
        super().__init__(message)
        self.message, self.status, self.field = message, status, field


class WorkbenchService:
    """A client of one workbench service: the shared token, signed answers, timeouts."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0, connect_timeout: float = 0.5):
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout = (connect_timeout, timeout)
        self.session = requests.Session()

    @classmethod
    def from_config(cls, config: Mapping) -> WorkbenchService:
        """Build the client from the portal's settings."""
        return cls(config["WORKBENCH_URL"], token=config.get("SERVING_TOKEN"), timeout=config["WORKBENCH_TIMEOUT"],
                   connect_timeout=config["SERVING_CONNECT_TIMEOUT"])

    def _call(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.session.request(method, self.url + path, json=body, params=params, headers=headers,
                                            timeout=self.timeout)
        except requests.RequestException as exc:
            raise WorkbenchUnavailable(f"the workbench service at {self.url} did not answer "
                                       f"({type(exc).__name__})") from exc
        if self.token and not verify(self.token, response.content, response.headers.get(SIGNATURE_HEADER, "")):
            raise WorkbenchUnavailable(f"the answer from {self.url} is not signed by the workbench service")
        try:
            answer = response.json()
        except ValueError as exc:
            raise WorkbenchUnavailable(f"the workbench service answered {response.status_code} badly") from exc
        if not isinstance(answer, dict):
            raise WorkbenchUnavailable("the workbench service answered badly")
        if 400 <= response.status_code < 500:
            raise WorkbenchRefused(str(answer.get("error") or "refused"), response.status_code, answer.get("field"))
        if response.status_code >= 300:
            raise WorkbenchUnavailable(f"the workbench service failed ({response.status_code}): "
                                       f"{answer.get('error') or ''}".rstrip(": "))
        return answer

    @staticmethod
    def _model(name: str) -> str:
        return "/v1/models/" + quote(name, safe="")

    def models(self) -> dict:
        """Return the registered models' names and the default one."""
        return self._call("GET", "/v1/models")

    def model(self, name: str) -> dict:
        """Return a model's versions, champion, rollback target and promotion history."""
        return self._call("GET", self._model(name))

    def version(self, name: str, version: str) -> dict:
        """Return one version with its gate evidence."""
        return self._call("GET", f"{self._model(name)}/versions/{quote(str(version), safe='')}")

    def compare(self, name: str, a: str, b: str) -> dict:
        """Return two versions side by side: metrics, curves and plots, rates, reasons profile."""
        return self._call("GET", f"{self._model(name)}/compare", params={"a": a, "b": b})

    def promote(self, name: str, version: str, *, reason: str, who: str, expected_champion: str | None) -> dict:
        """Give a version the champion alias (refused when the champion moved since the page showed it)."""
        return self._call("POST", f"{self._model(name)}/promote", {
            "version": version, "reason": reason, "who": who, "expected_champion": expected_champion})

    def rollback(self, name: str, *, reason: str, who: str, expected_champion: str | None) -> dict:
        """Give the alias back to the previous champion."""
        return self._call("POST", f"{self._model(name)}/rollback", {
            "reason": reason, "who": who, "expected_champion": expected_champion})

    def challenge(self, name: str, version: str | None, *, reason: str, who: str) -> dict:
        """Give a version the challenger alias, scored in the shadow of the champion (None clears it)."""
        return self._call("POST", f"{self._model(name)}/challenge", {"version": version, "reason": reason, "who": who})

    def jobs(self) -> dict:
        """Return the retrain jobs, newest first, and the running one's id."""
        return self._call("GET", "/v1/jobs")

    def start_job(self, *, who: str, seed: int | None, promote: bool) -> dict:
        """Start a retrain job; WorkbenchRefused (409) while another runs."""
        return self._call("POST", "/v1/jobs", {"who": who, "seed": seed, "promote": promote})

    def job(self, job_id: str) -> dict:
        """Return a job: state, stages, log, outcome or error."""
        return self._call("GET", "/v1/jobs/" + quote(job_id, safe=""))

    def cancel_job(self, job_id: str, *, who: str) -> dict:
        """Cancel a running job."""
        return self._call("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel", {"who": who})
