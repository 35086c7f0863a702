"""The documentation's links and pictures resolve inside the repository (a clone has everything they name)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", ["README.md", "docs/pages.md", "docs/architecture.md", "docs/serving.md",
                                 "docs/pipeline.md", "docs/languages.md"])
def test_every_link_resolves_inside_the_repository(doc):
    path = ROOT / doc
    missing = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        resolved = (path.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            missing.append(target)
    assert not missing, f"{doc} links to what a clone does not have: {missing}"
