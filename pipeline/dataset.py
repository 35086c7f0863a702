"""Stage 1, dataset: read the training table, check it, and describe it.

The default source is the ledger: its ``customer_years`` view (each customer's
dues and payments per calendar year), ``outcomes`` and ``customers.age``, turned
into one row per customer by ``pipeline.features.feature_frame``: the decision
year (the year after the customer's last complete year with data, before the
as-of year), the yearly paid percentages of ``FEATURES``, the percentage rule's
own figure, the label ``result`` and, for simulated data, ``true_probability``.
An export folder (``--data var/data``) goes through the same function. A data
scientist points the same pipeline at another table or a CSV/Parquet file by
declaring a ``DatasetSpec`` in a small YAML/JSON file (docs/pipeline.md, "Bring
your own data"): the model name it registers under, the target and the value of
a good outcome, each feature's kind and optional monotone direction, and the
cells that mean missing.

``validate`` is pure and reports every problem at once, so training stops on
bad data with one clear message (exit 2). Reading (``read_table``/``read_file``)
is the I/O edge; a file that cannot be read as a table (empty, another
delimiter, ragged rows) raises the same ``DataValidationError``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import create_engine, exc, text

from contracts import ledger_export
from contracts.settings import database_url, sqlalchemy_url
from model_registry import MODEL_NAME
from model_registry.audit import EXPERIMENT as AUDIT_EXPERIMENT
from pipeline.features import FEATURES, ID, TARGET, TRUE_PROBABILITY, customer_years, feature_frame

DEFAULT_TABLE = "customer_years"
AGE = "age"
DECISION_YEAR = "decision_year"


class DataValidationError(ValueError):
    """The training data breaks one or more rules; ``problems`` lists them all."""

    def __init__(self, problems: list[str], source: str = ""):
        self.problems = problems
        where = f" in {source}" if source else ""
        super().__init__(f"the training data{where} is not usable:\n  - " + "\n  - ".join(problems))


class SpecError(ValueError):
    """A dataset spec that cannot be used; the message names the key and says what is expected."""


KINDS = ("numeric", "categorical")
DIRECTIONS = {"increasing": 1, "decreasing": -1}
# A registered model's name: MLflow's names, kept to what a URL, a shell and a filter string take as they are.
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}


@dataclass(frozen=True)
class DatasetSpec:
    """What to learn from a table: its label, its features and their rules, and the model's name.

    ``positive`` is the target value of a good outcome (the score is its
    probability); None means the target is already 0/1 with 1 good.
    ``monotone_increasing`` / ``monotone_decreasing`` list the numeric features
    whose higher value may never lower / never raise the score (the gate checks
    only these). ``bounds`` is the allowed range of numeric features.
    ``allow_missing`` accepts missing feature values (the view's "nothing due
    that year"); a row with every feature missing is still an error.
    ``missing`` lists the cells of a file read as missing (nothing else is).
    ``model_name`` is the registered model the table's versions go to.
    """

    target: str = TARGET
    numeric: tuple[str, ...] = tuple(FEATURES)
    categorical: tuple[str, ...] = ()
    id_column: str | None = ID
    monotone_increasing: tuple[str, ...] = tuple(FEATURES)
    monotone_decreasing: tuple[str, ...] = ()
    bounds: dict[str, tuple[float, float]] = field(default_factory=lambda: {f: (0.0, 100.0) for f in FEATURES})
    allow_missing: bool = True
    table: str | None = DEFAULT_TABLE
    true_probability: str | None = TRUE_PROBABILITY
    date_column: str | None = DECISION_YEAR
    # The percentage rule's features (mean of yearly percentages / 100); empty: no baseline.
    baseline_features: tuple[str, ...] = tuple(FEATURES)
    model_name: str = MODEL_NAME
    positive: str | int | float | None = None
    missing: tuple[str, ...] = ("",)
    delimiter: str = ","
    file: str | None = None

    @property
    def features(self) -> list[str]:
        """Return every feature, numeric first, in the model's column order."""
        return [*self.numeric, *self.categorical]

    @property
    def monotone(self) -> dict[str, int]:
        """Return each monotone feature with its direction: +1 increasing, -1 decreasing."""
        return {**{name: 1 for name in self.monotone_increasing}, **{name: -1 for name in self.monotone_decreasing}}

    @property
    def is_ledger(self) -> bool:
        """Tell whether the table is the ledger's (yearly paid percentages, the percentage rule as baseline)."""
        return self.numeric == tuple(FEATURES) and bool(self.baseline_features)

    def to_dict(self) -> dict:
        """Return the spec as plain JSON-able data."""
        data = asdict(self)
        data["bounds"] = {k: list(v) for k, v in self.bounds.items()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict) -> DatasetSpec:
        """Build a spec from a mapping (a spec file, see docs/pipeline.md); raise SpecError naming what is wrong."""
        values = _normalise(data)
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise SpecError(f"unknown spec keys {sorted(unknown)}; known: {sorted(known | set(SPEC_SHORTHANDS))}")
        if not values.get("target") or not (values.get("numeric") or values.get("categorical")):
            raise SpecError("a spec needs a target and at least one numeric or categorical feature")
        if not values.get("model_name"):
            raise SpecError("a spec needs model_name: the registered model its versions go to "
                            f"(e.g. model_name: my-credit-table; the ledger's own model is {MODEL_NAME})")
        for key in ("numeric", "categorical", "monotone_increasing", "monotone_decreasing", "baseline_features"):
            values[key] = tuple(str(v) for v in values.get(key) or ())
        values["missing"] = tuple("" if v is None else str(v) for v in _as_list(values.get("missing", [""])))
        values["bounds"] = {k: (float(v[0]), float(v[1])) for k, v in (values.get("bounds") or {}).items()}
        spec = cls(**values)
        _check(spec)
        return spec


# Keys a spec file may use besides the fields: `features` (name -> kind, or {kind, monotone}) and `monotone`
# (name -> increasing | decreasing); both are turned into the fields by `_normalise`.
SPEC_SHORTHANDS = ("features", "monotone")


def _as_list(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _normalise(data: dict) -> dict:
    """Turn a spec file's `features` and `monotone` mappings into the spec's fields."""
    values = {k: v for k, v in data.items() if k not in SPEC_SHORTHANDS}
    numeric, categorical = list(values.get("numeric") or []), list(values.get("categorical") or [])
    monotone = dict(data.get("monotone") or {})
    features = data.get("features") or {}
    if not isinstance(features, dict) or not isinstance(monotone, dict):
        raise SpecError("features and monotone are mappings: `name: numeric` or `name: {kind: numeric, "
                        "monotone: increasing}`; `name: increasing`")
    for name, declared in features.items():
        kind = declared.get("kind") if isinstance(declared, dict) else declared
        if kind not in KINDS:
            raise SpecError(f"feature {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
        (numeric if kind == "numeric" else categorical).append(name)
        if isinstance(declared, dict) and declared.get("monotone"):
            monotone[name] = declared["monotone"]
        unknown = set(declared) - {"kind", "monotone"} if isinstance(declared, dict) else set()
        if unknown:
            raise SpecError(f"feature {name!r}: unknown keys {sorted(unknown)} (known: kind, monotone)")
    for name, direction in monotone.items():
        if direction not in DIRECTIONS:
            raise SpecError(f"monotone {name!r}: {direction!r} is not increasing or decreasing")
        key = "monotone_increasing" if direction == "increasing" else "monotone_decreasing"
        values[key] = [*(values.get(key) or []), name]
    if features or "numeric" in values or "categorical" in values:
        values["numeric"], values["categorical"] = numeric, categorical
    return values


def _check(spec: DatasetSpec) -> None:
    """Raise SpecError unless the spec's names and values fit together."""
    features = spec.features
    twice = sorted({name for name in features if features.count(name) > 1})
    if twice:
        raise SpecError(f"declared more than once: {', '.join(twice)}")
    for name in (spec.target, spec.id_column):
        if name and name in features:
            raise SpecError(f"{name!r} is the target or the id column, so it cannot be a feature too")
    for name in (*spec.monotone_increasing, *spec.monotone_decreasing, *spec.bounds, *spec.baseline_features):
        if name not in spec.numeric:
            why = " (a category has no order)" if name in spec.categorical else ""
            raise SpecError(f"{name!r} in the spec is not one of its numeric features{why}")
    both = set(spec.monotone_increasing) & set(spec.monotone_decreasing)
    if both:
        raise SpecError(f"both increasing and decreasing: {', '.join(sorted(both))}")
    if spec.model_name == AUDIT_EXPERIMENT:
        raise SpecError(f"model_name {spec.model_name!r} is the registry's audit log: choose another name")
    if not MODEL_NAME_PATTERN.match(spec.model_name):
        raise SpecError(f"model_name {spec.model_name!r}: letters, digits, '-', '_' and '.', at most 100, "
                        "starting with a letter or digit")
    if spec.delimiter not in DELIMITERS:
        raise SpecError(f"delimiter {spec.delimiter!r} is not one of {', '.join(map(repr, DELIMITERS))}")
    if isinstance(spec.positive, list | dict | bool):
        raise SpecError(f"positive is one value of the target (e.g. positive: good), not {spec.positive!r}")


DEFAULT_SPEC = DatasetSpec()


def load_spec(path: str | Path | None) -> DatasetSpec:
    """Read a spec from a YAML or JSON file (docs/pipeline.md); None gives the ledger's spec."""
    if path is None:
        return DEFAULT_SPEC
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML too
    except OSError as exc:
        raise SpecError(f"cannot read the spec {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not YAML or JSON: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec file holds a mapping (target: ..., features: ...)")
    # A spec for another table: nothing of the ledger's carries over unless stated.
    for key, value in {"id_column": None, "bounds": {}, "monotone_increasing": [], "monotone_decreasing": [],
                       "baseline_features": [],
                       "true_probability": None, "date_column": None, "table": None}.items():
        data.setdefault(key, value)
    if data.get("file"):
        data["file"] = str((path.parent / str(data["file"])).resolve())  # relative to the spec
    try:
        return DatasetSpec.from_dict(data)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from exc


def validate(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC, *, min_rows: int = 100,
             min_per_class: int = 10, source: str = "") -> pd.DataFrame:
    """Return the frame if it can be trained on; raise DataValidationError listing every problem."""
    problems: list[str] = []
    required = [*spec.features, spec.target] + ([spec.id_column] if spec.id_column else [])
    missing = [c for c in required if c not in frame.columns]
    if missing:
        hint = ("; this is not the ledger's format: describe the file's columns in a dataset spec "
                "(SPEC=spec.yaml, or --spec; docs/pipeline.md, 'Bring your own data')") if spec == DEFAULT_SPEC else ""
        raise DataValidationError([f"missing columns: {', '.join(missing)} "
                                   f"(found: {', '.join(map(str, frame.columns))}){hint}"], source)

    if len(frame) < min_rows:
        problems.append(f"too few rows: {len(frame)} (at least {min_rows} are needed)")
    problems += _label_problems(frame[spec.target], spec, min_per_class)
    problems += _numeric_problems(frame, spec)
    empty = [name for name in spec.features if len(frame) and frame[name].isna().all()]
    if empty:
        problems.append(f"no value at all in {', '.join(empty)}" + _empty_years_hint(frame, empty, spec))
    for name in spec.categorical:
        if not spec.allow_missing and frame[name].isna().any():
            problems.append(f"{name}: {int(frame[name].isna().sum())} missing values")
    if spec.features:
        empty = frame[spec.features].isna().all(axis=1)
        if empty.any():
            problems.append(f"{int(empty.sum())} rows have no feature value at all, e.g. "
                            f"{_examples(frame.loc[empty, spec.id_column] if spec.id_column else frame.index[empty])}")
    if spec.id_column:
        ids = frame[spec.id_column]
        if ids.isna().any():
            problems.append(f"{spec.id_column}: {int(ids.isna().sum())} missing ids")
        dup = ids[ids.duplicated(keep=False)].dropna()
        if len(dup):
            problems.append(f"{spec.id_column}: {dup.nunique()} duplicated ids, e.g. {_examples(dup.unique())}")
    if problems:
        raise DataValidationError(problems, source)
    return frame


def _empty_years_hint(frame: pd.DataFrame, empty: list[str], spec: DatasetSpec) -> str:
    """Name the calendar years behind empty yearly features, when the frame says its decision years."""
    if not spec.date_column or spec.date_column not in frame or not set(empty) <= set(FEATURES):
        return ""
    years = sorted({int(y) - (len(FEATURES) - FEATURES.index(name))
                    for name in empty for y in pd.to_numeric(frame[spec.date_column]).dropna().unique()})
    return f": the window of feature years is empty (nothing due in {', '.join(map(str, years))} for any customer)"


def is_positive(values: pd.Series, positive: str | int | float | None) -> pd.Series:
    """Tell which target values are the positive class: equal as text, or as numbers when both are numbers.

    ``positive`` None means 1 (a 0/1 target). Text is compared with surrounding
    spaces removed, so ``good`` in the spec matches `` good`` in a file.
    """
    positive = 1 if positive is None else positive
    same = values.astype(str).str.strip() == str(positive).strip()
    number = pd.to_numeric(pd.Series([positive]), errors="coerce").iloc[0]
    if pd.notna(number):
        same |= pd.to_numeric(values, errors="coerce") == number
    return same


def _label_problems(label: pd.Series, spec: DatasetSpec, min_per_class: int) -> list[str]:
    name = spec.target
    if label.empty:
        return [f"{name}: no labelled rows at all"]
    if label.isna().any():
        return [f"{name}: {int(label.isna().sum())} missing labels"]
    positive = is_positive(label, spec.positive)
    if spec.positive is None:
        bad = ~positive & ~is_positive(label, 0)
        if bad.any():
            return [f"{name}: the label must be 0 or 1, found {int(bad.sum())} other values, e.g. "
                    f"{_examples(label[bad].unique())} (a fraction such as 0.83 is a score, not an outcome; "
                    "for a text target, name the value of a good outcome with `positive:` in the spec)"]
    else:
        others = label[~positive].astype(str).str.strip().value_counts()
        found = ", ".join(f"{value!r} ({count} rows)" for value, count in others.head(5).items())
        if not positive.any():
            return [f"{name}: the positive value {spec.positive!r} never appears; found {found}"]
        if len(others) > 1:
            return [f"{name}: the target must hold the positive value {spec.positive!r} and one other value; "
                    f"found {len(others)} others: {found}"]
    counts = positive.astype(int).value_counts()
    if len(counts) < 2:
        return [f"{name}: only one class ({'positive' if positive.all() else 'negative'}) in {len(label)} rows: "
                "nothing to learn"]
    if counts.min() < min_per_class:
        return [f"{name}: only {int(counts.min())} rows of class {int(counts.idxmin())} "
                f"(at least {min_per_class} per class are needed)"]
    return []


def _numeric_problems(frame: pd.DataFrame, spec: DatasetSpec) -> list[str]:
    problems = []
    markers = ", ".join(repr(m) for m in spec.missing) or "none"
    for name in spec.numeric:
        raw = frame[name]
        values = pd.to_numeric(raw, errors="coerce")
        not_numeric = values.isna() & raw.notna()
        if not_numeric.any():
            problems.append(f"{name}: {int(not_numeric.sum())} values are not numbers, e.g. "
                            f"{_examples(raw[not_numeric].unique())} (read as missing: {markers}; a value that "
                            "means missing goes under `missing:` in the spec, a category under `categorical`)")
            continue
        values = values.astype(float)
        if np.isinf(values).any():
            problems.append(f"{name}: {int(np.isinf(values).sum())} infinite values")
        if not spec.allow_missing and values.isna().any():
            problems.append(f"{name}: {int(values.isna().sum())} missing values")
        if name in spec.bounds:
            lo, hi = spec.bounds[name]
            out = (values < lo) | (values > hi)
            if out.any():
                problems.append(f"{name}: {int(out.sum())} values outside {lo:g}-{hi:g}, e.g. "
                                f"{_examples(values[out].unique())}")
    return problems


def _examples(values, k: int = 3) -> str:
    shown = [repr(v.item() if hasattr(v, "item") else v) for v in list(values)[:k]]
    return ", ".join(shown)


def feature_matrix(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC) -> np.ndarray:
    """Return the model's input: numeric features as floats, categorical as strings, in spec order."""
    numeric = frame[list(spec.numeric)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if not spec.categorical:
        return numeric
    categorical = frame[list(spec.categorical)].astype("object").where(frame[list(spec.categorical)].notna(), "missing")
    return np.concatenate([numeric.astype(object), categorical.astype(str).to_numpy(dtype=object)], axis=1)


def labels(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC) -> np.ndarray:
    """Return the label as an int array: 1 for the positive value (a good outcome), else 0."""
    return is_positive(frame[spec.target], spec.positive).astype(int).to_numpy()


def fingerprint(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC) -> dict:
    """Describe the training data: rows, a content hash, its years and its label balance."""
    columns = [c for c in [spec.id_column, *spec.features, spec.target] if c]
    ordered = frame[columns].sort_values(columns[0], kind="stable") if spec.id_column else frame[columns]
    hashed = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes() + ",".join(columns).encode()).hexdigest()
    info = {
        "rows": int(len(frame)),
        "sha256": digest,
        "columns": columns,
        "positive_rate": round(float(labels(frame, spec).mean()), 6),
    }
    if spec.date_column and spec.date_column in frame.columns:
        years = pd.to_numeric(frame[spec.date_column], errors="coerce").dropna()
        if len(years):
            first, last = int(years.min()), int(years.max())
            info["decision_year_min"], info["decision_year_max"] = first, last
            if spec.numeric == tuple(FEATURES):
                # The features are the five complete years before the decision year.
                info["history_years"] = f"{first - len(FEATURES)}-{last - 1}"
    return info


@dataclass
class Dataset:
    """A validated training table and where it came from."""

    frame: pd.DataFrame
    spec: DatasetSpec
    source: str
    notes: list[str] = field(default_factory=list)


def prepare(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC, *, source: str = "",
            drop_unlabelled: bool = False, min_rows: int = 100) -> Dataset:
    """Drop unlabelled rows when asked (the ledger's customers without an outcome), then validate."""
    notes = []
    if frame.attrs.get("without_complete_year"):
        notes.append(f"{frame.attrs['without_complete_year']} customers have no complete year of dues before "
                     f"{frame.attrs['as_of_year']} and were left out")
    if len(frame) == 0 and "as_of_year" in frame.attrs:
        raise DataValidationError([f"no customer has a complete year of dues before {frame.attrs['as_of_year']}: "
                                   "the window of feature years is empty"], source)
    if drop_unlabelled and spec.target in frame.columns:
        unlabelled = frame[spec.target].isna()
        if unlabelled.any():
            notes.append(f"{int(unlabelled.sum())} rows without an outcome were left out")
            frame = frame.loc[~unlabelled]
    frame = validate(frame.reset_index(drop=True), spec, min_rows=min_rows, source=source)
    return Dataset(frame=frame, spec=spec, source=source, notes=notes)


# --- I/O edge ---------------------------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def read_file(path: str | Path, as_of_year: int | None = None, spec: DatasetSpec = DEFAULT_SPEC) -> pd.DataFrame:
    """Read a CSV or Parquet file, or a folder holding an export (customers/dues/outcomes.parquet).

    Only the spec's ``missing`` markers are read as missing (not pandas' long
    default list, where ``n/a`` or ``NULL`` would vanish silently), and the
    categorical columns and the target are read as text. A file that cannot be
    read as a table raises DataValidationError saying why.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    if path.is_dir():
        return from_export(ledger_export.read(path), as_of_year)
    if path.stat().st_size == 0:
        raise DataValidationError(["the file is empty: no header and no rows"], str(path))
    if path.suffix.lower() in {".parquet", ".pq"}:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a file that is not Parquet
            raise DataValidationError([f"cannot be read as Parquet: {str(exc).splitlines()[0]}"], str(path)) from exc
        text = frame.columns[[not pd.api.types.is_numeric_dtype(t) for t in frame.dtypes]]
        frame[text] = frame[text].mask(frame[text].isin(spec.missing))
        return frame
    _check_delimiter(path, spec.delimiter)
    try:
        return pd.read_csv(path, sep=spec.delimiter, keep_default_na=False, na_values=list(spec.missing),
                           dtype={name: str for name in (*spec.categorical, spec.target)})
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(["the file is empty: no header and no rows"], str(path)) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError([f"cannot be read as CSV: {str(exc).strip().splitlines()[0]}"], str(path)) from exc


def _check_delimiter(path: Path, delimiter: str) -> None:
    """Raise DataValidationError when the header is split by another delimiter than the spec's."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    if delimiter in header:
        return
    found = [d for d in DELIMITERS if d != delimiter and d in header]
    if found:
        raise DataValidationError([f"the header is separated by {DELIMITERS[found[0]]} ({found[0]!r}), not by "
                                   f"{DELIMITERS[delimiter]}: add `delimiter: {found[0]!r}` to the spec, or save "
                                   f"the file with {DELIMITERS[delimiter]}"], str(path))


def from_export(data: dict[str, pd.DataFrame], as_of_year: int | None = None) -> pd.DataFrame:
    """Return the training rows of a bank's export (the simulator's frames), without a database.

    The same rows as the ledger gives (``from_ledger``): the dues are summed per
    customer and year as the ``customer_years`` view does, then
    ``pipeline.features.feature_frame`` picks each customer's decision year.
    """
    customers = data["customers"][[ID] + ([AGE] if AGE in data["customers"] else [])]
    return _assemble(customer_years(data["dues"]), customers, data.get("outcomes"), as_of_year)


def _assemble(years: pd.DataFrame, customers: pd.DataFrame, outcomes: pd.DataFrame | None,
              as_of_year: int | None) -> pd.DataFrame:
    """Join the feature rows with age and outcomes; customers without a complete year are left out."""
    year = date.today().year if as_of_year is None else int(as_of_year)
    features = feature_frame(years, year)
    frame = features.merge(customers, on=ID, how="left")
    if outcomes is not None:
        frame = frame.merge(outcomes[[c for c in (ID, TARGET, TRUE_PROBABILITY) if c in outcomes]], on=ID, how="left")
    frame.attrs["without_complete_year"] = int(len(set(customers[ID]) - set(features[ID])))
    frame.attrs["as_of_year"] = year
    return frame


class DataSourceError(RuntimeError):
    """The data cannot be read at all (no ledger file, no such table or view)."""


# The ledger as the pipeline reads it: per-customer-year sums (migration 0002), age, outcomes.
LEDGER_QUERIES = {
    "years": "SELECT customer_id, year, months, due_cents, paid_cents FROM customer_years",
    "customers": f"SELECT id AS {ID}, {AGE} FROM customers",
    "outcomes": f"SELECT {ID}, {TARGET}, {TRUE_PROBABILITY} FROM outcomes",
}


def read_table(database_url: str, spec: DatasetSpec = DEFAULT_SPEC, as_of_year: int | None = None) -> pd.DataFrame:
    """Read the training rows from a database: the ledger for the default spec, else the spec's table."""
    if not _IDENTIFIER.match(spec.table):
        raise ValueError(f"not a table name: {spec.table!r}")
    if database_url.startswith("sqlite:///") and not Path(database_url.removeprefix("sqlite:///")).exists():
        raise DataSourceError(f"no ledger at {database_url}: run `make data` first (or pass --data FILE)")
    queries = LEDGER_QUERIES if spec.table == DEFAULT_TABLE else {"table": f"SELECT * FROM {spec.table}"}
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            frames = {name: pd.read_sql_query(text(query), conn) for name, query in queries.items()}
    except (exc.SQLAlchemyError, pd.errors.DatabaseError) as error:
        raise DataSourceError(f"cannot read {spec.table} from {_redact(database_url)}: "
                              f"{str(error).splitlines()[0]} (is the ledger migrated? `make data`)") from error
    finally:
        engine.dispose()
    if "table" in frames:
        return frames["table"]
    return _assemble(frames["years"], frames["customers"], frames["outcomes"], as_of_year)


def load(spec: DatasetSpec = DEFAULT_SPEC, *, data: str | Path | None = None,
         database_url: str | None = None, min_rows: int = 100, as_of_year: int | None = None) -> Dataset:
    """Read and check the training data: a file (``data``, else the spec's), a table, or the ledger as of a year."""
    data = data if data is not None else spec.file
    if data is not None:
        # An export folder, like the ledger, may hold customers without an outcome yet.
        return prepare(read_file(data, as_of_year, spec), spec, source=str(data), min_rows=min_rows,
                       drop_unlabelled=Path(data).is_dir())
    if spec.table is None:
        raise DataSourceError("the spec names neither a file nor a table: pass DATA=file (--data), or add "
                              "`file:` to the spec")
    database_url = resolve_database_url(database_url)
    source = f"{_redact(database_url)} ({spec.table})"
    return prepare(read_table(database_url, spec, as_of_year), spec, source=source,
                   drop_unlabelled=True, min_rows=min_rows)


def resolve_database_url(url: str | None = None) -> str:
    """Return a SQLAlchemy URL: the argument (postgres:// spellings get the psycopg driver) or DATABASE_URL."""
    return sqlalchemy_url(url) if url else database_url()


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)

