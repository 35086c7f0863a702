"""The champion alias's history: one MLflow run per move, in the experiment ``registry-audit``.

Every move of the alias (a promotion by the gate or by hand, a rollback) is
appended as a new run whose **params** hold the event: ``event``, ``model``,
``from_version``, ``to_version``, ``who``, ``when``, ``why`` and the gate's
``evidence`` (the full text also as the artifact ``evidence.txt``). MLflow
refuses to change a logged param, and a later move only ever adds a run, so no
move can overwrite an earlier one. A run deleted through MLflow's UI is still
read back (``ViewType.ALL``) and marked ``deleted``.

``lineage`` replays the events into the stack of champions that a rollback
walks back through: a promotion pushes, a rollback pops. Moves of the
``challenger`` alias (events ``challenge`` and ``unchallenge``) are in the same
log and play no part in that stack.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow.entities import ViewType

from model_registry import store

EXPERIMENT = "registry-audit"
CHAMPION_EVENTS = ("promote", "rollback")
FIELDS = ("event", "model", "from_version", "to_version", "who", "when", "why")
PARAM_LIMIT = 6000  # MLflow's longest param value


def _experiment_id(client) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    root = store.artifact_root(client.tracking_uri) if hasattr(client, "tracking_uri") else None
    location = f"{root.rstrip('/')}/{EXPERIMENT}" if root else None
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def record(client, *, event: str, model: str, from_version: str | None, to_version: str, who: str, when: str,
           why: str, evidence: str = "") -> str:
    """Append one alias move to the audit log; return its run id."""
    run = client.create_run(_experiment_id(client), run_name=f"{event} {from_version or '-'} -> {to_version}",
                            tags={"model": model, "event": event})
    values = {"event": event, "model": model, "from_version": from_version or "-", "to_version": to_version,
              "who": who, "when": when, "why": why, "evidence": evidence or "-"}
    for key, value in values.items():
        client.log_param(run.info.run_id, key, str(value)[:PARAM_LIMIT])
    if evidence:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "evidence.txt"
            path.write_text(evidence)
            client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def events(client, model: str) -> list[dict]:
    """Return every recorded move of ``model``'s alias, oldest first (deleted runs included, marked)."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], filter_string=f"params.model = '{model}'",
                              run_view_type=ViewType.ALL, max_results=50_000)
    out = []
    for run in runs:
        params = run.data.params
        out.append({**{k: params.get(k, "") for k in FIELDS},
                    "from_version": None if params.get("from_version") in (None, "-") else params["from_version"],
                    "evidence": params.get("evidence", ""), "run_id": run.info.run_id,
                    "deleted": run.info.lifecycle_stage == "deleted", "started": run.info.start_time})
    return sorted(out, key=lambda e: (e["started"], e["when"]))


def lineage(records: list[dict]) -> list[str]:
    """Return the champions a rollback walks back through, oldest first: promotions push, rollbacks pop."""
    stack: list[str] = []
    for e in (r for r in records if r["event"] in CHAMPION_EVENTS):
        if e["event"] == "rollback":
            while stack and stack[-1] != e["to_version"]:
                stack.pop()
            if not stack:
                stack.append(e["to_version"])
        else:
            if e["from_version"] and (not stack or stack[-1] != e["from_version"]):
                stack.append(e["from_version"])  # the alias had been moved outside this module
            stack.append(e["to_version"])
    return stack
