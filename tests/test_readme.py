"""The README's commands are the ones CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ci_var(name):
    m = re.search(rf"^{name}='(.+)'$", (ROOT / ".ci" / "run").read_text(), re.M)
    assert m, f".ci/run has no {name}='...' line"
    return m.group(1)


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    install, test = _ci_var("INSTALL"), _ci_var("TEST")
    assert f"{install} && s3r-zoo demo" in readme
    assert f"{install} && {test}" in readme
