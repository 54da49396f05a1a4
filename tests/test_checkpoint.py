"""needle.save / needle.load: round trips, atomic writes, and clear errors on bad files."""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from pathlib import Path

import needle as ndl
import needle.serialization as serialization
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st


def sample_state(device: ndl.Device) -> dict:
    """Everything a training checkpoint holds: model and optimizer state, counters, settings."""
    rng = np.random.default_rng(0)
    w = ndl.Tensor(rng.standard_normal((3, 4)), device=device, dtype="float64")
    return {
        "model": {"w": w, "b": ndl.Tensor(rng.standard_normal((1, 4)), device=device,
                                          requires_grad=False)},
        "tied": w,
        "optimizer": {"state": {0: {"step": 7, "m": ndl.Tensor(np.ones((3, 4)), device=device,
                                                             dtype="float64", requires_grad=False)}},
                      "hyper": {"lr": 0.1, "betas": (0.9, 0.999)}},
        "epoch": 3, "big": 2**70, "loss": np.float32(0.25), "seed": np.int64(-5),
        "nan": math.nan, "inf": -math.inf, "name": "résumé ✓", "flag": False, "nothing": None,
        "labels": np.array([3, 1, 2], dtype=np.uint8), "mask": np.array([True, False]),
        "empty": np.zeros((0, 5), dtype=np.float32),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "words": np.array(["a", "bc"]), "nested": [1, (2.5, [None, "x"]), {}], "": [],
    }


def assert_same_tree(got, want, where="obj"):
    """Same structure, types, dtypes, shapes, values (NaN equal to NaN) and tensor flags."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, ndl.Tensor):
        assert got.dtype == want.dtype and got.shape == want.shape, where
        assert got.requires_grad == want.requires_grad, where
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=where)
    elif isinstance(want, (np.ndarray, np.generic)):
        assert got.dtype == want.dtype and np.shape(got) == np.shape(want), where
        np.testing.assert_array_equal(got, want, err_msg=where)
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for k in want:
            assert_same_tree(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_tree(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), where
    else:
        assert got == want, where


def test_round_trip_keeps_structure_types_and_values(device, tmp_path):
    state = sample_state(device)
    ndl.save(state, tmp_path / "ckpt.npz")
    loaded = ndl.load(tmp_path / "ckpt.npz", device=device)
    assert_same_tree(loaded, state)
    assert loaded["tied"] is loaded["model"]["w"], "a tensor saved twice must load as one tensor"
    assert loaded["model"]["w"].device == device
    assert loaded["model"]["w"].op is None and loaded["model"]["w"].grad is None


def test_round_trip_across_devices(device, tmp_path):
    """Saved on one device, loaded on another (cpu <-> each usable device)."""
    for src, dst in ((ndl.cpu(), device), (device, ndl.cpu())):
        state = sample_state(src)
        ndl.save(state, tmp_path / "x.npz")
        loaded = ndl.load(tmp_path / "x.npz", device=dst)
        assert loaded["model"]["w"].device == dst
        assert_same_tree(loaded, state)


def test_load_defaults_to_default_device_and_accepts_names(tmp_path):
    ndl.save({"w": ndl.Tensor([1.0, 2.0])}, str(tmp_path / "d.npz"))
    assert ndl.load(tmp_path / "d.npz")["w"].device == ndl.default_device()
    assert ndl.load(tmp_path / "d.npz", device="cpu")["w"].device == ndl.cpu()


def test_loaded_tensors_do_not_alias_each_other_or_the_file(tmp_path):
    a = ndl.Tensor(np.zeros(3), requires_grad=False)
    ndl.save({"a": a, "b": np.zeros(3)}, tmp_path / "c.npz")
    first, second = ndl.load(tmp_path / "c.npz"), ndl.load(tmp_path / "c.npz")
    first["a"].numpy()[:] = 1.0
    first["b"][:] = 1.0
    assert second["a"].numpy().sum() == 0 and second["b"].sum() == 0
    assert a.numpy().sum() == 0


def test_file_is_a_plain_npz_readable_without_pickle(tmp_path):
    path = tmp_path / "plain"  # no suffix: save must not append ".npz"
    ndl.save({"w": ndl.Tensor([[1.0, 2.0]])}, path)
    assert os.listdir(tmp_path) == ["plain"]
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert any(a.dtype == np.float32 and a.tolist() == [[1.0, 2.0]] for a in arrays.values())
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())


@pytest.mark.parametrize("bad, where", [
    ({"f": print}, "obj['f']"),
    ({"x": [1, {"y": {1, 2}}]}, "obj['x'][1]['y']"),
    ({"o": np.array([None, 1], dtype=object)}, "obj['o']"),
    ({(1, 2): 3}, "obj"),
    ({True: 3}, "obj"),
    (1 + 2j, "obj"),
])
def test_unsupported_values_raise_typeerror_before_touching_disk(tmp_path, bad, where):
    ndl.save({"old": 1}, tmp_path / "c.npz")
    with pytest.raises(TypeError) as info:
        ndl.save(bad, tmp_path / "c.npz")
    assert where in str(info.value)
    assert os.listdir(tmp_path) == ["c.npz"] and ndl.load(tmp_path / "c.npz") == {"old": 1}


def test_save_into_missing_directory_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        ndl.save({}, tmp_path / "nope" / "c.npz")


def test_save_respects_umask(tmp_path):
    old = os.umask(0o027)
    try:
        ndl.save({}, tmp_path / "c.npz")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "c.npz").st_mode & 0o777 == 0o640


# -- atomic writes -------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_crash_mid_save_keeps_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch, exc):
    path = tmp_path / "ckpt.npz"
    ndl.save({"epoch": 1, "w": np.arange(4.0)}, path)
    before = path.read_bytes()
    real_write, calls = serialization._write_array, []

    def write_then_crash(zf, name, array):
        calls.append(name)
        if len(calls) == 3:  # manifest and one array written, crash on the next
            raise exc
        real_write(zf, name, array)

    monkeypatch.setattr(serialization, "_write_array", write_then_crash)
    with pytest.raises(type(exc)):
        ndl.save({"epoch": 2, "w": np.arange(4.0), "v": np.ones(3)}, path)
    assert len(calls) == 3
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert path.read_bytes() == before
    assert ndl.load(path)["epoch"] == 1


def test_failed_fsync_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    ndl.save({"epoch": 1}, path)

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(serialization.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        ndl.save({"epoch": 2}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"] and ndl.load(path) == {"epoch": 1}


def test_save_replaces_existing_checkpoint(tmp_path):
    ndl.save({"epoch": 1}, tmp_path / "c.npz")
    ndl.save({"epoch": 2}, tmp_path / "c.npz")
    assert ndl.load(tmp_path / "c.npz") == {"epoch": 2} and os.listdir(tmp_path) == ["c.npz"]


# -- bad files -------------------------------------------------------------------------------
def _expect_error(path: Path, *fragments: str) -> None:
    with pytest.raises(ndl.CheckpointError) as info:
        ndl.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_checkpoint_error_is_a_valueerror():
    assert issubclass(ndl.CheckpointError, ValueError)


def test_missing_file_and_directory(tmp_path):
    _expect_error(tmp_path / "absent.npz", "no such")
    _expect_error(tmp_path, "IsADirectoryError")


def test_files_that_are_not_needle_checkpoints(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3))
    _expect_error(tmp_path / "a.npy", "not a needle checkpoint")
    np.savez(tmp_path / "b.npz", x=np.arange(3))
    _expect_error(tmp_path / "b.npz", "not a needle checkpoint", "numpy.savez")
    (tmp_path / "c.txt").write_text("hello")
    _expect_error(tmp_path / "c.txt", "not a needle checkpoint")
    (tmp_path / "empty").write_bytes(b"")
    _expect_error(tmp_path / "empty", "not a needle checkpoint")


class _Exploit:
    """Unpickling this would create a marker file: loading must never get that far."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickles_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"w": _Exploit(marker)}))
    _expect_error(tmp_path / "p.pkl", "not a needle checkpoint")
    # A well-formed needle manifest pointing at a pickled object array inside the zip.
    ndl.save({"w": np.zeros(2)}, tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as npz:
        members = {k: npz[k] for k in npz.files}
    members["a0"] = np.array([_Exploit(marker)], dtype=object)
    np.savez(tmp_path / "evil.npz", **members)
    _expect_error(tmp_path / "evil.npz", "pickle")
    assert not marker.exists()


def test_newer_format_version_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization, "VERSION", 99)
    ndl.save({"w": 1}, tmp_path / "new.npz")
    monkeypatch.undo()
    _expect_error(tmp_path / "new.npz", "version 99")


def test_every_truncation_is_a_checkpoint_error(tmp_path):
    ndl.save(sample_state(ndl.cpu()), tmp_path / "c.npz")
    data = (tmp_path / "c.npz").read_bytes()
    for n in range(0, len(data), 7):
        (tmp_path / "t.npz").write_bytes(data[:n])
        _expect_error(tmp_path / "t.npz")


_REFERENCE: dict[str, bytes] = {}


def _reference_bytes(directory: Path) -> bytes:
    if "bytes" not in _REFERENCE:
        ndl.save(sample_state(ndl.cpu()), directory / "ref.npz")
        _REFERENCE["bytes"] = (directory / "ref.npz").read_bytes()
    return _REFERENCE["bytes"]


@given(data=st.data())
def test_random_corruption_raises_only_checkpoint_error(tmp_path_factory, data):
    """Flipped bytes and truncation: a CheckpointError, or (harmless bytes) the exact same data."""
    directory = tmp_path_factory.getbasetemp()
    original = _reference_bytes(directory)
    corrupt = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        i = data.draw(st.integers(0, len(corrupt) - 1), label="position")
        corrupt[i] ^= data.draw(st.integers(1, 255), label="xor")
    if data.draw(st.booleans(), label="truncate"):
        corrupt = corrupt[:data.draw(st.integers(0, len(corrupt)), label="length")]
    path = directory / "corrupt.npz"
    path.write_bytes(bytes(corrupt))
    try:
        loaded = ndl.load(path)
    except ndl.CheckpointError as exc:
        assert str(path) in str(exc)
        return
    assert_same_tree(loaded, sample_state(ndl.cpu()))
