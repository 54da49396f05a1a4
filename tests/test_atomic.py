"""``needle.atomic.atomic_write``: the one writer behind checkpoints and the CLI's files."""

from __future__ import annotations

import errno
import os

import needle as ndl
import pytest
from needle.atomic import atomic_write, stale_temporaries, temporary_name


def test_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.bin"]


def test_a_failing_writer_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def half(f):
        f.write(b"ne")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(path, half)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize("dangling", [False, True])
def test_a_link_at_the_final_name_is_refused_and_its_target_untouched(tmp_path, dangling):
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_bytes(b"precious")
    (tmp_path / "c.npz").symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link") as info:
        ndl.save({"w": 1}, tmp_path / "c.npz")
    assert info.value.errno == errno.ELOOP and str(tmp_path / "c.npz") in str(info.value)
    assert victim.read_bytes() == b"precious" if not dangling else not victim.exists()
    assert sorted(os.listdir(tmp_path)) == (["c.npz"] if dangling else ["c.npz", "victim"])


def test_temporaries_are_fresh_names_created_exclusively(tmp_path, monkeypatch):
    planted = tmp_path / ".f.bin.0123456789ab.tmp"
    planted.symlink_to(tmp_path / "victim")
    names = iter([str(planted), str(tmp_path / ".f.bin.ba9876543210.tmp")])
    monkeypatch.setattr("needle.atomic.temporary_name", lambda path: next(names))
    with pytest.raises(FileExistsError):  # O_EXCL | O_NOFOLLOW: the planted link is not opened
        atomic_write(tmp_path / "f.bin", lambda f: f.write(b"x"))
    assert not (tmp_path / "victim").exists() and planted.is_symlink()
    atomic_write(tmp_path / "f.bin", lambda f: f.write(b"x"))
    assert (tmp_path / "f.bin").read_bytes() == b"x"


def test_stale_temporaries_are_found_by_their_name(tmp_path):
    path = tmp_path / "c.npz"
    stale = temporary_name(path)
    open(stale, "wb").close()
    for other in (".c.npz.tmp", ".d.npz.0123456789ab.tmp", "c.npz"):
        (tmp_path / other).write_bytes(b"")
    assert stale_temporaries(tmp_path, ("c.npz",)) == [stale]
