"""``revisions`` (this checkout against another commit): its arithmetic, its guard that a
run really measures the tree it names, and a quick run end to end."""

from __future__ import annotations

import subprocess

import _mnist
import pytest
import revisions
from _testing import quick_run


def test_change_is_this_trees_median_against_the_others():
    runs = {"this": [{"sgd": 0.9, "adam": 1.0}, {"sgd": 1.1, "adam": 1.2}, {"sgd": 1.0, "adam": 1.1}],
            "other": [{"sgd": 0.8, "adam": 1.1}, {"sgd": 0.8, "adam": 1.1}, {"sgd": 0.7, "adam": 1.0}]}
    rows = {row["config"]: row for row in revisions.compare(runs, ["this", "other"])}
    assert rows["sgd"]["change"] == pytest.approx(1.0 / 0.8 - 1)
    assert rows["adam"]["change"] == pytest.approx(0.0)
    assert rows["sgd"]["trees"]["this"]["min"] == 0.9 and rows["sgd"]["trees"]["this"]["max"] == 1.1
    assert rows["sgd"]["trees"]["other"]["runs"] == [0.8, 0.8, 0.7]


def test_a_run_refuses_a_needle_from_another_tree(tmp_path):
    # this process's needle is the installed checkout's, not tmp_path's
    with pytest.raises(RuntimeError, match="not from the tree"):
        revisions.worker(tmp_path, repeats=5, quick=True)


def test_an_unknown_revision_is_named():
    with pytest.raises(SystemExit, match="'no-such-rev' is not a commit"):
        revisions.resolve("no-such-rev")


def test_pythonpath_puts_each_package_source_of_the_tree_first(tmp_path):
    entries = revisions.source_path(tmp_path).split(":")
    assert entries == [str(tmp_path / "packages" / p / "src") for p in revisions.PACKAGES]


@pytest.mark.skipif(not (_mnist.data_dir() / "mnist" / _mnist.IMAGES).is_file(),
                    reason="MNIST test images not found (NEEDLE_DATA_DIR)")
def test_quick_run_against_head_end_to_end():
    before = subprocess.run(["git", "-C", str(revisions.REPO), "worktree", "list"],
                            capture_output=True, text=True, check=True).stdout
    records, out = quick_run("revisions")
    assert [r["config"]["config"] for r in records] == list(revisions.CONFIGS)
    for r in records:
        trees = r["results"]
        assert len(trees) == 2 and all(t["median"] > 0 and len(t["runs"]) == 4
                                       for t in trees.values())
    assert "this checkout against HEAD" in out
    after = subprocess.run(["git", "-C", str(revisions.REPO), "worktree", "list"],
                           capture_output=True, text=True, check=True).stdout
    assert after == before  # the temporary worktree is gone


def test_the_batch_size_reaches_each_run(monkeypatch, tmp_path):
    from types import SimpleNamespace

    seen = []

    def fake_run(argv, **kw):
        seen.append(argv)
        return SimpleNamespace(returncode=0, stdout='{"sgd": 1.0, "adam": 1.0}\n', stderr="")

    monkeypatch.setattr(revisions.subprocess, "run", fake_run)
    args = SimpleNamespace(repeats=5, quick=True, batch=8)
    assert revisions.run_tree(tmp_path, args) == {"sgd": 1.0, "adam": 1.0}
    argv = seen[0]
    assert argv[argv.index("--batch") + 1] == "8" and "--quick" in argv


def test_at_and_against_the_same_commit_is_refused():
    from types import SimpleNamespace

    args = SimpleNamespace(against="HEAD", at="HEAD", repeats=5, quick=True, batch=128, rounds=2)
    with pytest.raises(SystemExit, match="name the same commit"):
        revisions.main(args)


def _has_parent() -> bool:
    done = subprocess.run(["git", "-C", str(revisions.REPO), "rev-parse", "--verify", "-q",
                           "HEAD~1^{commit}"], capture_output=True, text=True)
    return done.returncode == 0


@pytest.mark.skipif(not (_mnist.data_dir() / "mnist" / _mnist.IMAGES).is_file(),
                    reason="MNIST test images not found (NEEDLE_DATA_DIR)")
@pytest.mark.skipif(not _has_parent(), reason="HEAD has no parent commit here (a shallow clone)")
def test_quick_run_of_one_past_commit_against_its_parent():
    before = subprocess.run(["git", "-C", str(revisions.REPO), "worktree", "list"],
                            capture_output=True, text=True, check=True).stdout
    records, out = quick_run("revisions", "--at", "HEAD", "--against", "HEAD~1", "--rounds", "2")
    head = revisions.resolve("HEAD")
    assert [r["config"]["at"] for r in records] == [head, head]
    assert {r["config"]["against"] for r in records} == {revisions.resolve("HEAD~1")}
    assert all(len(t["runs"]) == 2 for r in records for t in r["results"].values())
    assert "HEAD (" in out and "against HEAD~1 (" in out and "this checkout" not in out
    after = subprocess.run(["git", "-C", str(revisions.REPO), "worktree", "list"],
                           capture_output=True, text=True, check=True).stdout
    assert after == before  # both temporary worktrees are gone
