"""The checks CI runs are the ones pre-commit runs, and each names a hatch script that
exists: a check dropped from one place, or renamed in hatch.toml, fails here first."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HATCH_RUN = re.compile(r"hatch run (\w[\w-]*):(\w[\w-]*)")


def _ci_checks() -> set[tuple[str, str]]:
    return set(HATCH_RUN.findall((ROOT / ".ci" / "run").read_text()))


def test_ci_runs_tests_lint_types_and_docs():
    text = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^hatch test$", text, re.M)
    assert _ci_checks() == {("lint", "check"), ("types", "check"), ("docs", "build")}


def test_pre_commit_runs_what_ci_runs():
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    assert set(HATCH_RUN.findall(config)) == _ci_checks()
    assert "entry: hatch test" in config
    assert "repo: local" in config and "rev:" not in config  # nothing fetched


def test_each_check_is_a_hatch_script():
    hatch = (ROOT / "hatch.toml").read_text()
    for env, script in _ci_checks():
        section = re.search(rf"^\[envs\.{env}\.scripts\]\n(.*?)(?=^\[|\Z)", hatch, re.M | re.S)
        assert section, f"hatch.toml has no [envs.{env}.scripts]"
        assert re.search(rf"^{script} = ", section.group(1), re.M), \
            f"[envs.{env}.scripts] has no {script!r}"


def test_docs_build_is_strict():
    hatch = (ROOT / "hatch.toml").read_text()
    assert 'build = "mkdocs build --strict' in hatch
    assert re.search(r"^strict: true$", (ROOT / "mkdocs.yml").read_text(), re.M)
