"""Full runs into a temporary MLflow store: the registered version, the gate, promotion and rollback."""
from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

import model_registry
from model_registry import store
from model_registry.__main__ import main as registry_cli
from pipeline import dataset as ds
from pipeline import monitor
from pipeline import train as tr
from pipeline.features import FEATURES
from pipeline.run import RunConfig, run
from portal.db import Database
from portal.models import CreditDecision

QUIET = {"out": lambda line: None}
FAST = tr.TrainParams(cv_repeats=1)


def test_a_run_leaves_a_champion_with_its_evidence(trained_store, tmp_path):
    uri, outcome = trained_store
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("credit-approval", "champion")
    assert mv.version == 1 or str(mv.version) == "1"
    assert mv.tags["status"] == "champion" and "promoted_by" not in mv.tags  # who/why: the audit log
    assert mv.tags["threshold"] == "0.8" and mv.tags["data_rows"] == "1000" and len(mv.tags["training_key"]) == 64
    assert len(mv.tags["data_sha256"]) == 64 and mv.tags["data_history_years"] == "2021-2025"
    assert mv.description.startswith(f"{outcome.kind} on 1,000 rows of customer_years")
    assert "gate: passed" in mv.description
    registered, event = model_registry.describe(tracking_uri=uri)["events"]  # every step is in the audit log
    assert (registered["event"], registered["from_version"], registered["to_version"], registered["who"]) == \
        ("register", None, "1", "pipeline.run")
    assert registered["why"] == f"trained: run {mv.run_id}"
    assert (event["event"], event["from_version"], event["to_version"], event["who"]) == \
        ("promote", None, "1", "pipeline.run")
    assert event["why"].startswith("first champion") and "PASS  beats percentage rule" in event["evidence"]

    run = client.get_run(mv.run_id)
    for name in ("test_auc", "test_auc_low", "test_auc_high", "test_ks", "test_brier", "test_log_loss", "test_ece",
                 "test_ece_low", "test_ece_high", "test_approval_rate", "test_bad_rate_approved", "baseline_auc",
                 "true_probability_auc", "true_probability_auc_low", "auc_gap_to_true_probability",
                 "auc_lift_over_baseline_low", "single_paid_pct_1y_ago_auc", "single_mean_5y_auc_high",
                 "test_bad_rate_at_rule_rate", "baseline_bad_rate_at_model_rate_low", "bad_rate_gap_at_rule_rate",
                 "candidate_logreg_cv_log_loss_low", "candidate_hgb_cv_auc", "monotonic", "ece_rows_needed",
                 "target_met_test_ece", "seconds_train"):
        assert name in run.data.metrics, name
    assert run.data.params["threshold"] == "0.8" and run.data.params["seed"] == "42"
    (data_input,) = run.inputs.dataset_inputs
    assert data_input.dataset.digest == mv.tags["data_sha256"][:16]
    assert json.loads(data_input.dataset.profile)["num_rows"] == 1000
    assert mv.tags["data_sha256"] in data_input.dataset.source

    artifacts = {a.path for a in client.list_artifacts(mv.run_id, "evaluation")}
    assert {"evaluation/roc.png", "evaluation/calibration.png", "evaluation/score_histogram.png",
            "evaluation/fairness_by_age.csv", "evaluation/comparison.csv", "evaluation/gate.txt",
            "evaluation/intervals.csv"} <= artifacts
    root = {a.path for a in client.list_artifacts(mv.run_id)}
    assert {"feature_reference.json", "data", "model_card.md", "training"} <= root
    card = client.download_artifacts(mv.run_id, "model_card.md", str(tmp_path))
    text = Path(card).read_text()
    for part in ("## Data", "## Held-out metrics", "## Gate", "## Limits", "PASS calibration", "["):
        assert part in text, part
    # Artifacts live next to the store (var/mlartifacts for the default store).
    store_dir = Path(uri.removeprefix("sqlite:///")).parent
    assert client.get_run(mv.run_id).info.artifact_uri.startswith((store_dir / "mlartifacts").as_uri())


def test_the_logged_model_has_signature_example_and_pinned_requirements(trained_store, tmp_path, demo_ledger_url):

    uri, _ = trained_store
    store.configure(uri)  # tracking and registry: another test may have pointed the registry elsewhere
    path = Path(mlflow.artifacts.download_artifacts("models:/credit-approval@champion", dst_path=str(tmp_path)))
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert [(c["name"], c["type"]) for c in inputs] == [(f, "double") for f in FEATURES]
    assert mlmodel["saved_input_example_info"]["artifact_path"] == "input_example.json"
    assert mlmodel["metadata"]["threshold"] == 0.8
    # The input example is synthetic: each feature's 10th, 50th and 90th percentile, not customers' rows.
    example = json.loads((path / "input_example.json").read_text())
    frame = ds.load(database_url=demo_ledger_url).frame
    expected = [[round(float(np.quantile(frame[f], q)), 1) for f in FEATURES] for q in (0.1, 0.5, 0.9)]
    assert example["data"] == expected
    assert example["data"][:2] != frame[FEATURES].head(2).round(1).values.tolist()
    requirements = (path / "requirements.txt").read_text().split()
    assert any(r.startswith("mlflow==") for r in requirements)
    assert any(r.startswith("scikit-learn==") for r in requirements)
    assert (path / "artifacts" / "sklearn_pipeline.joblib").exists()


def test_stock_mlflow_scores_the_champion_like_the_pipeline(trained_store, demo_ledger_url):

    uri, outcome = trained_store
    store.configure(uri)
    frame = ds.load(database_url=demo_ledger_url).frame
    pyfunc = mlflow.pyfunc.load_model("models:/credit-approval@champion")
    stock = np.asarray(pyfunc.predict(frame[FEATURES].astype(float)))
    ours = outcome.model.predict_proba(ds.feature_matrix(frame))[:, 1]
    champion = model_registry.load_champion(tracking_uri=uri)
    served = champion.pipeline.predict_proba(frame[champion.features].to_numpy(dtype=float))[:, 1]
    assert stock.shape == (1000,)
    np.testing.assert_array_equal(stock, ours)
    np.testing.assert_array_equal(served, ours)


def test_load_champion_gives_serving_what_it_needs(trained_store):
    uri, outcome = trained_store
    champion = model_registry.load_champion(tracking_uri=uri)
    assert champion.version == "1" and champion.uri == "models:/credit-approval/1"
    assert champion.threshold == 0.8 and champion.features == FEATURES and champion.categorical == []
    assert champion.reference["near_cutoff"]["rows"] >= 30
    assert set(champion.reference["distributions"]) == set(FEATURES)
    assert champion.metadata["kind"] == outcome.kind
    assert model_registry.champion_uri() == "models:/credit-approval@champion"
    assert model_registry.champion_version(tracking_uri=uri) == "1"


def test_make_run_does_not_retrain_when_there_is_a_champion(trained_store, demo_ledger_url):
    uri, _ = trained_store
    outcome = run(RunConfig(database_url=demo_ledger_url, tracking_uri=uri, if_no_champion=True), **QUIET)
    assert outcome.skipped and outcome.version is None


def test_a_worse_candidate_stays_a_challenger_and_rollback_restores_the_champion(
        mlflow_uri, demo_ledger_url, capsys):
    frame = ds.load(database_url=demo_ledger_url).frame
    first = run(RunConfig(tracking_uri=mlflow_uri, params=FAST), frame=frame, **QUIET)
    assert first.promoted and first.version == "1"

    # Deliberately worse: the labels of every customer outside the held-out split are shuffled.
    test_ids = set(tr.split(frame).test["customer_id"])
    noisy = frame.copy()
    outside = ~noisy["customer_id"].isin(test_ids)
    noisy.loc[outside, "result"] = np.random.default_rng(0).permutation(noisy.loc[outside, "result"].to_numpy())
    worse = run(RunConfig(tracking_uri=mlflow_uri, params=FAST), frame=noisy, **QUIET)
    assert worse.version == "2" and not worse.promoted
    assert worse.metrics["champion_auc"] == pytest.approx(first.metrics["test_auc"])  # same held-out rows
    assert model_registry.champion_version(tracking_uri=mlflow_uri) == "1"
    info = model_registry.describe(tracking_uri=mlflow_uri)
    v2 = next(v for v in info["versions"] if v["version"] == "2")
    assert v2["status"] == "challenger" and "beats champion" in v2["tags"]["gate_reasons"]

    # A person promotes it anyway (make promote VERSION=2 WHY=...), then rolls back (make rollback WHY=...).
    with pytest.raises(SystemExit):  # no reason given: refused
        registry_cli(["--tracking-uri", mlflow_uri, "promote", "2"])
    with pytest.raises(model_registry.RegistryError, match="a reason is required"):
        model_registry.promote("2", why="  ", tracking_uri=mlflow_uri)
    assert registry_cli(["--tracking-uri", mlflow_uri, "promote", "2", "--who", "tester", "--why", "try it"]) == 0
    assert model_registry.champion_version(tracking_uri=mlflow_uri) == "2"
    info = model_registry.describe(tracking_uri=mlflow_uri)
    v2 = next(v for v in info["versions"] if v["version"] == "2")
    assert v2["aliases"] == ["champion"] and info["history"] == ["1", "2"]
    assert registry_cli(["--tracking-uri", mlflow_uri, "describe"]) == 0
    table = capsys.readouterr().out
    assert "kept out:" not in table and "v2: the gate kept it out (promoted by hand since" in table

    with pytest.raises(SystemExit):
        registry_cli(["--tracking-uri", mlflow_uri, "rollback"])
    assert registry_cli(["--tracking-uri", mlflow_uri, "rollback", "--who", "tester", "--why", "worse"]) == 0
    assert model_registry.champion_version(tracking_uri=mlflow_uri) == "1"
    info = model_registry.describe(tracking_uri=mlflow_uri)
    statuses = {v["version"]: v["status"] for v in info["versions"]}
    assert statuses == {"1": "champion", "2": "rolled-back"}
    # Version 1's original promotion is still on record, untouched by the rollback.
    moves = [(e["event"], e["from_version"], e["to_version"], e["who"]) for e in info["events"]]
    assert moves == [("register", None, "1", "pipeline.run"), ("promote", None, "1", "pipeline.run"),
                     ("register", None, "2", "pipeline.run"), ("promote", "1", "2", "tester"),
                     ("rollback", "2", "1", "tester")]
    assert info["events"][1]["why"].startswith("first champion") and info["events"][4]["why"] == "worse"

    assert registry_cli(["--tracking-uri", mlflow_uri, "rollback", "--why", "again"]) == 1  # v1 was the first
    assert "nothing to roll back to" in capsys.readouterr().err
    assert registry_cli(["--tracking-uri", mlflow_uri, "promote", "9", "--why", "x"]) == 1

    assert registry_cli(["--tracking-uri", mlflow_uri, "describe"]) == 0
    table = capsys.readouterr().out
    assert "champion: version 1" in table and "rolled-back" in table and "challenger" not in table.split("\n")[0]
    assert "history of the champion alias" in table and "rollback v2 -> v1     by tester: worse" in table


def test_the_audit_log_survives_any_sequence_of_moves(mlflow_uri, demo_ledger_url):
    frame = ds.load(database_url=demo_ledger_url).frame
    for seed in (1, 2, 3):  # three versions (different seeds, so each is registered)
        run(RunConfig(tracking_uri=mlflow_uri, params=tr.TrainParams(seed=seed, cv_repeats=1), promote=False),
            frame=frame, **QUIET)
    rng = np.random.default_rng(5)
    expected = [("register", None, v) for v in ("1", "2", "3")]  # each training is in the log first
    snapshots = []
    for step in range(12):
        current = model_registry.champion_version(tracking_uri=mlflow_uri)
        lineage = model_registry.describe(tracking_uri=mlflow_uri)["history"]
        if current and len(lineage) > 1 and rng.random() < 0.4:
            out = model_registry.rollback(who="ops", why=f"step {step}", tracking_uri=mlflow_uri)
            expected.append(("rollback", out["previous"], out["champion"]))
        else:
            target = str(rng.choice([v for v in ("1", "2", "3") if v != current]))
            model_registry.promote(target, who="ops", why=f"step {step}", tracking_uri=mlflow_uri)
            expected.append(("promote", current, target))
        events = model_registry.describe(tracking_uri=mlflow_uri)["events"]
        snapshots.append(events)
        # Every earlier record is exactly as it was when it was written.
        for before, now in zip(snapshots[:-1], [events] * (len(snapshots) - 1)):
            assert now[:len(before)] == before
    events = model_registry.describe(tracking_uri=mlflow_uri)["events"]
    assert [(e["event"], e["from_version"], e["to_version"]) for e in events] == expected
    assert [e["why"] for e in events[3:]] == [f"step {i}" for i in range(12)]
    info = model_registry.describe(tracking_uri=mlflow_uri)
    assert info["history"][-1] == info["champion"] and "unaudited_move" not in info

    # An alias moved behind the registry's back (MLflow's UI) is noticed, not silently recorded.
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    other = next(v for v in ("1", "2", "3") if v != info["champion"])
    client.set_registered_model_alias("credit-approval", "champion", other)
    assert "moved outside model_registry" in model_registry.describe(tracking_uri=mlflow_uri)["unaudited_move"]


def test_the_same_data_and_parameters_are_not_registered_twice(mlflow_uri, demo_ledger_url):
    frame = ds.load(database_url=demo_ledger_url).frame
    lines = []
    first = run(RunConfig(tracking_uri=mlflow_uri, params=FAST), frame=frame, **QUIET)
    again = run(RunConfig(tracking_uri=mlflow_uri, params=FAST), frame=frame, out=lines.append)
    assert first.version == "1" and again.version is None
    assert again.skipped.startswith("credit-approval version 1 was trained on the same data")
    assert "not registered again" in "\n".join(lines)
    other_seed = run(RunConfig(tracking_uri=mlflow_uri, params=tr.TrainParams(seed=7, cv_repeats=1)), frame=frame,
                     **QUIET)
    assert other_seed.version == "2"


def test_describe_on_an_empty_store(mlflow_uri, capsys):
    assert model_registry.describe(tracking_uri=mlflow_uri)["versions"] == []
    assert model_registry.load_champion(tracking_uri=mlflow_uri) is None
    assert registry_cli(["--tracking-uri", mlflow_uri, "describe"]) == 0
    assert "no versions registered yet" in capsys.readouterr().out


def _ledger_with_decisions(tmp_path, demo_ledger_url, decisions: list[dict]) -> str:
    """Return a copy of the demo ledger holding the given credit decisions."""
    path = tmp_path / "ledger.db"
    shutil.copy(demo_ledger_url.removeprefix("sqlite:///"), path)
    url = f"sqlite:///{path}"
    db = Database(url)
    start = datetime.now(UTC) - timedelta(hours=1)
    with db.sessions() as session, session.begin():
        for i, d in enumerate(decisions):
            session.add(CreditDecision(request_id=str(uuid.uuid4()), customer_id=d["customer_id"], year=2026,
                                       month=1, amount_cents=10_000, method=d.get("method", "ml"),
                                       approved=d["score"] >= 0.8, score=d["score"], threshold=0.8,
                                       inputs={"features": d["features"], "years": {}}, reasons=[],
                                       model_version=d.get("version", "1"),
                                       created_at=start + timedelta(seconds=i)))
    db.dispose()
    return url


def _decisions(frame: pd.DataFrame, champion, shift: float = 0.0) -> list[dict]:
    feats = frame[FEATURES].clip(lower=0) if not shift else (frame[FEATURES] - shift).clip(lower=0)
    scores = champion.predict(feats.to_numpy(dtype=float))
    return [{"customer_id": int(cid), "score": float(p), "features": dict(zip(FEATURES, map(float, row)))}
            for cid, p, row in zip(frame["customer_id"], scores, feats.to_numpy())]


def test_monitor_on_25_decisions_of_the_training_population_flags_nothing(trained_store, demo_ledger_url,
                                                                          tmp_path):
    uri, _ = trained_store
    champion = model_registry.load_champion(tracking_uri=uri)
    frame = tr.split(ds.load(database_url=demo_ledger_url).frame).development.sample(25, random_state=1)
    url = _ledger_with_decisions(tmp_path, demo_ledger_url, _decisions(frame, champion))
    lines = []
    code = monitor.main(["--database-url", url, "--tracking-uri", uri, "--out", str(tmp_path / "mon")],
                        out=lines.append)
    text = "\n".join(lines)
    assert code == 0 and "nothing shifted" in text and "fewer than 100: nothing is flagged" in text
    assert "shifted" not in pd.read_csv(next((tmp_path / "mon").glob("psi-*.csv")))["band"].tolist()


def test_monitor_flags_a_shifted_population_per_version_and_exits_non_zero(trained_store, demo_ledger_url,
                                                                          tmp_path):
    uri, _ = trained_store
    champion = model_registry.load_champion(tracking_uri=uri)
    frame = ds.load(database_url=demo_ledger_url).frame.head(150)
    decisions = _decisions(frame, champion, shift=20)  # everyone pays 20 points less
    repeats = [dict(d) for d in decisions[:40]]  # 40 customers ask again: counted once
    unknown = [{**d, "version": "9"} for d in decisions[:5]]  # a version the registry does not have
    percentage = [{**d, "method": "percentage"} for d in decisions[:10]]
    url = _ledger_with_decisions(tmp_path, demo_ledger_url, decisions + repeats + unknown + percentage)
    assert len(monitor.read_ml_decisions(url)) == 195
    outcomes = tmp_path / "outcomes.csv"
    frame[["customer_id", "result"]].to_csv(outcomes, index=False)
    lines = []
    code = monitor.main(["--database-url", url, "--tracking-uri", uri, "--out", str(tmp_path / "mon"),
                         "--outcomes", str(outcomes)], out=lines.append)
    text = "\n".join(lines)
    assert code == 1, text
    assert "195 ML decisions" in text and "155 after counting each customer once per model version" in text
    assert "version 1: 150 customers" in text and "version 9: 5 customers; cannot load" in text
    assert "SHIFTED: version 1:" in text and "score" in text.split("SHIFTED")[1]
    assert "realised outcomes of 150 customers" in text and "AUC 0." in text
    table = pd.read_csv(next((tmp_path / "mon").glob("psi-*.csv")))
    assert list(table["feature"]) == [*FEATURES, "score"] and (table["psi"] > 0.25).all()
    assert (table["noise_threshold"] < 0.25).all() and len(list((tmp_path / "mon").glob("psi-*.png"))) == 1


def test_monitor_without_decisions_or_ledger(trained_store, tmp_path, capsys):
    uri, _ = trained_store
    assert monitor.main(["--database-url", f"sqlite:///{tmp_path / 'none.db'}", "--tracking-uri", uri]) == 2
    assert "cannot monitor" in capsys.readouterr().err
