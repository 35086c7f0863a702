"""The ``credit-approval`` registered model: versions, the ``champion`` alias, and its history.

Design overview
---------------
* The live version is the one carrying the alias ``champion`` (stages are
  deprecated in MLflow and never used). Serving loads
  ``models:/credit-approval@champion``.
* Each version's tag ``status`` says what it is now: ``candidate`` (just
  registered), ``champion``, ``challenger`` (kept out by the gate, with
  ``gate_reasons``, written once when the gate decided), ``former-champion``
  or ``rolled-back``. Each version has a description (data, metrics, gate).
* Who moved the alias, when, why and on what evidence is never a tag: every
  move is appended to the audit log (``model_registry.audit``, one MLflow run
  per move in the experiment ``registry-audit``), which later moves never
  overwrite. A manual promotion or rollback needs a reason.
* A rollback gives the alias back to the champion before the current one, as
  replayed from the audit log (a promotion pushes, a rollback pops), so two
  rollbacks in a row go two champions back.
* A version trained on the same data with the same parameters as an existing
  one is found by its ``training_key`` tag (``find_version``) and not
  registered again.
* The alias ``challenger`` names the version serving scores in the shadow of
  the champion (live requests, never the answer). ``challenge`` sets or clears
  it, with a reason, audited like a promotion (events ``challenge`` and
  ``unchallenge``). Promoting the challenger's version clears the alias (one
  version cannot shadow itself; the move is audited as ``unchallenge``); the
  former champion stays the one a rollback returns to, as for any promotion.
  (The ``status`` tag ``challenger`` is older and means something else: the
  gate kept the version out. Any version can be put in the shadow.)
"""
from __future__ import annotations

import getpass
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime

import mlflow
import numpy as np
from mlflow import MlflowClient

from model_registry import audit, package, store

MODEL_NAME = "credit-approval"
CHAMPION = "champion"
CHALLENGER = "challenger"
KEY_METRICS = ("test_auc", "test_auc_low", "test_auc_high", "test_ece", "test_ece_low", "test_ece_high",
               "test_brier", "baseline_auc", "true_probability_auc", "auc_lift_over_baseline",
               "auc_lift_over_baseline_low", "auc_lift_over_baseline_high", "test_approval_rate",
               "test_bad_rate_approved")


class RegistryError(RuntimeError):
    """A registry operation cannot be done (no such version, nothing to roll back to, ...)."""


@dataclass
class LoadedModel:
    """A registered version, ready to score: the fitted scikit-learn pipeline and what to know about it."""

    pipeline: object
    name: str
    version: str
    uri: str
    run_id: str | None
    threshold: float
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    reference: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    signature: list[dict] | None = None  # the MLmodel's input columns: [{"name", "type"}, ...]
    input_example: list[dict] | None = None  # the rows logged with the model

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        """Return the allowed range of each bounded numeric feature, as the version's dataset spec records it."""
        spec_bounds = (self.metadata.get("spec") or {}).get("bounds") or {}
        return {k: (float(v[0]), float(v[1])) for k, v in spec_bounds.items()}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return the probability of a good outcome for rows of features in ``features`` order."""
        return self.pipeline.predict_proba(x)[:, 1]


def client(tracking_uri: str | None = None):
    """Return an MlflowClient on the configured store."""
    uri = store.configure(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _who(who: str | None) -> str:
    if who:
        return who
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


def champion_uri(name: str = MODEL_NAME, alias: str = CHAMPION) -> str:
    """Return the URI serving loads: ``models:/credit-approval@champion`` by default."""
    return f"models:/{name}@{alias}"


def register(model_uri: str, *, run_id: str | None = None, tags: dict | None = None, description: str = "",
             name: str = MODEL_NAME, tracking_uri: str | None = None, who: str | None = None,
             why: str | None = None) -> str:
    """Register a logged model (``models:/<model_id>``) as a new version of ``name``; return its number.

    With ``why`` (the pipeline gives it) the registration is appended to the audit log too, with who trained.
    """
    c = client(tracking_uri)
    try:
        c.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises RESOURCE_DOES_NOT_EXIST
        c.create_registered_model(name, description="Probability that a customer repays a credit "
                                  "(result = 1); approve at the version's threshold. Live version: alias champion.")
    tags = {"status": "candidate", **{k: str(v) for k, v in (tags or {}).items()}}
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    mv = c.create_model_version(name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id,
                                description=description or None)
    if why:
        audit.record(c, event="register", model=name, from_version=None, to_version=str(mv.version), who=_who(who),
                     when=_now(), why=why)
    return str(mv.version)


def find_version(*, training_key: str, name: str = MODEL_NAME, tracking_uri: str | None = None) -> str | None:
    """Return the version registered with this ``training_key`` tag (same data and parameters), or None."""
    if not training_key.isalnum():
        raise ValueError("a training key is a hex digest")
    try:
        found = client(tracking_uri).search_model_versions(f"name='{name}' and tags.training_key='{training_key}'")
    except Exception:  # noqa: BLE001 - no registered model yet
        return None
    return str(min(int(v.version) for v in found)) if found else None


def alias_version(name: str = MODEL_NAME, tracking_uri: str | None = None, alias: str = CHAMPION) -> str:
    """Return the version holding the alias, or raise RegistryError saying why it does not resolve (cheap: poll it)."""
    try:
        return str(client(tracking_uri).get_model_version_by_alias(name, alias).version)
    except Exception as exc:  # noqa: BLE001 - no model, no alias (its version deleted), or no registry
        raise RegistryError(f"{name}@{alias} does not resolve: {type(exc).__name__}: {exc}"[:500]) from exc


def champion_version(name: str = MODEL_NAME, tracking_uri: str | None = None, alias: str = CHAMPION) -> str | None:
    """Return the version holding the alias (champion by default), or None when it does not resolve."""
    try:
        return alias_version(name, tracking_uri, alias)
    except RegistryError:
        return None


def _require_reason(why: str, alias: str = CHAMPION) -> str:
    if not (why or "").strip():
        raise RegistryError(f"a reason is required to move the {alias} alias (--why / WHY=...)")
    return why.strip()


def _clear_challenger(c, name: str, version: str, who: str, why: str) -> None:
    """Drop the challenger alias from a version that has just become the champion (audited)."""
    c.delete_registered_model_alias(name, CHALLENGER)
    audit.record(c, event="unchallenge", model=name, from_version=version, to_version="-", who=who, when=_now(),
                 why=f"promoted to champion: {why}")


def promote(version: str | int, *, who: str | None = None, why: str, evidence: str = "", name: str = MODEL_NAME,
            tracking_uri: str | None = None) -> dict:
    """Move the champion alias to a version and append the move to the audit log; return what changed."""
    why = _require_reason(why)
    c = client(tracking_uri)
    version = str(version)
    try:
        c.get_model_version(name, version)
    except Exception as exc:  # noqa: BLE001
        raise RegistryError(f"{name} has no version {version}") from exc
    previous = champion_version(name, tracking_uri)
    if previous == version:
        return {"champion": version, "previous": previous, "changed": False}
    c.set_registered_model_alias(name, CHAMPION, version)
    c.set_model_version_tag(name, version, "status", "champion")
    if previous is not None:
        c.set_model_version_tag(name, previous, "status", "former-champion")
    audit.record(c, event="promote", model=name, from_version=previous, to_version=version, who=_who(who),
                 when=_now(), why=why, evidence=evidence)
    if champion_version(name, tracking_uri, CHALLENGER) == version:
        _clear_challenger(c, name, version, _who(who), why)
    return {"champion": version, "previous": previous, "changed": True}


def challenge(version: str | int | None, *, who: str | None = None, why: str, name: str = MODEL_NAME,
              tracking_uri: str | None = None) -> dict:
    """Give the challenger alias to a version (None clears it) and append the move to the audit log."""
    why = _require_reason(why, CHALLENGER)
    c = client(tracking_uri)
    previous = champion_version(name, tracking_uri, CHALLENGER)
    if version is None:
        if previous is None:
            return {"challenger": None, "previous": None, "changed": False}
        c.delete_registered_model_alias(name, CHALLENGER)
        audit.record(c, event="unchallenge", model=name, from_version=previous, to_version="-", who=_who(who),
                     when=_now(), why=why)
        return {"challenger": None, "previous": previous, "changed": True}
    version = str(version)
    try:
        c.get_model_version(name, version)
    except Exception as exc:  # noqa: BLE001
        raise RegistryError(f"{name} has no version {version}") from exc
    if version == champion_version(name, tracking_uri):
        raise RegistryError(f"version {version} is the champion: a challenger must be another version")
    if previous == version:
        return {"challenger": version, "previous": previous, "changed": False}
    c.set_registered_model_alias(name, CHALLENGER, version)
    audit.record(c, event="challenge", model=name, from_version=previous, to_version=version, who=_who(who),
                 when=_now(), why=why)
    return {"challenger": version, "previous": previous, "changed": True}


def mark_challenger(version: str | int, reasons: list[str], *, name: str = MODEL_NAME,
                    tracking_uri: str | None = None) -> None:
    """Record that the gate kept a version out, and why (version tags, written once)."""
    c = client(tracking_uri)
    c.set_model_version_tag(name, str(version), "status", "challenger")
    c.set_model_version_tag(name, str(version), "gate_reasons", "; ".join(reasons)[:4900] or "-")
    c.set_model_version_tag(name, str(version), "gate_decided_at", _now())


def previous_champion(history: list[str], current: str | None) -> str | None:
    """Return the version a rollback gives the alias to: the last champion in the lineage before ``current``."""
    stack = list(history)
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack and current is not None else None


def rollback(*, who: str | None = None, why: str, name: str = MODEL_NAME, tracking_uri: str | None = None) -> dict:
    """Give the champion alias back to the champion before the current one (from the audit log); log the move."""
    why = _require_reason(why)
    c = client(tracking_uri)
    current = champion_version(name, tracking_uri)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    previous = previous_champion(audit.lineage(audit.events(c, name)), current)
    if previous is None:
        raise RegistryError(f"{name}: version {current} is the first champion; there is nothing to roll back to")
    c.set_registered_model_alias(name, CHAMPION, previous)
    c.set_model_version_tag(name, current, "status", "rolled-back")
    c.set_model_version_tag(name, previous, "status", "champion")
    audit.record(c, event="rollback", model=name, from_version=current, to_version=previous, who=_who(who),
                 when=_now(), why=why)
    return {"champion": previous, "previous": current, "changed": True}


def describe(name: str = MODEL_NAME, tracking_uri: str | None = None) -> dict:
    """Return the versions (newest first) with aliases, status and key metrics; the champion lineage and audit log.

    ``history`` is the lineage of champions a rollback walks back through
    (version strings, oldest first); ``events`` the full audit records.
    """
    c = client(tracking_uri)
    try:
        model = c.get_registered_model(name)
    except Exception:  # noqa: BLE001
        return {"name": name, "champion": None, "challenger": None, "history": [], "events": [], "versions": [],
                "tracking_uri": store.tracking_uri(tracking_uri)}
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = []
    for mv in sorted(c.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version), reverse=True):
        metrics = {}
        if mv.run_id:
            try:
                run_metrics = c.get_run(mv.run_id).data.metrics
                metrics = {k: run_metrics[k] for k in KEY_METRICS if k in run_metrics}
            except Exception:  # noqa: BLE001 - a deleted run leaves the version usable
                pass
        versions.append({
            "version": str(mv.version),
            "aliases": sorted(set(mv.aliases or []) | set(aliases.get(str(mv.version), []))),
            "status": mv.tags.get("status", ""),
            "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"),
            "run_id": mv.run_id,
            "kind": mv.tags.get("model_kind", ""),
            "threshold": mv.tags.get("threshold", ""),
            "data_rows": mv.tags.get("data_rows", ""),
            "description": mv.description or "",
            "metrics": metrics,
            "tags": dict(mv.tags),
        })
    champion = next((v["version"] for v in versions if CHAMPION in v["aliases"]), None)
    challenger = next((v["version"] for v in versions if CHALLENGER in v["aliases"]), None)
    events = audit.events(c, name)
    history = audit.lineage(events)
    info = {"name": name, "champion": champion, "challenger": challenger, "history": history, "events": events,
            "versions": versions, "tracking_uri": store.tracking_uri(tracking_uri)}
    if champion is not None and (not history or history[-1] != champion):
        info["unaudited_move"] = f"the alias points at version {champion}, but the audit log ends at " \
                                 f"{history[-1] if history else 'nothing'}: it was moved outside model_registry"
    return info


def load_version(version: str | int, name: str = MODEL_NAME, tracking_uri: str | None = None) -> LoadedModel:
    """Download a version and return its fitted pipeline with its metadata and feature reference."""
    c = client(tracking_uri)
    mv = c.get_model_version(name, str(version))
    uri = f"models:/{name}/{mv.version}"
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        pipeline, metadata, reference = package.read_model_dir(path)
        signature, example = package.read_signature(path), package.read_input_example(path)
    return LoadedModel(
        pipeline=pipeline, name=name, version=str(mv.version), uri=uri, run_id=mv.run_id,
        threshold=float(metadata["threshold"]), features=list(metadata["features"]),
        numeric=list(metadata["numeric"]), categorical=list(metadata["categorical"]),
        reference=reference, metadata=metadata, signature=signature, input_example=example,
    )


def load_champion(name: str = MODEL_NAME, tracking_uri: str | None = None,
                  alias: str = CHAMPION) -> LoadedModel | None:
    """Resolve ``models:/<name>@<alias>`` (credit-approval@champion by default) and load it; None without it."""
    version = champion_version(name, tracking_uri, alias)
    if version is None:
        return None
    return load_version(version, name, tracking_uri)
