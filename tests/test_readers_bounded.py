"""Tiny files that declare huge shapes: every reader refuses them without allocating.

Each read runs under ``resource.setrlimit(RLIMIT_AS)`` with only ``HEADROOM`` bytes
above what the process already maps, while the files declare at least 4 GiB (or,
for the decompression bombs, really inflate past the headroom): a reader that
trusted the declaration would fail with ``MemoryError`` instead of its own error.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import pickle
import zipfile
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from needle.data import CIFAR10Dataset, Corpus, DataError, MNISTDataset, read_cifar_batch, read_idx

resource = pytest.importorskip("resource", reason="resource.setrlimit is POSIX-only")
HEADROOM = 256 << 20
HUGE = 4 << 30  # bytes every forged declaration asks for, at least
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
_FROMBUFFER = np.ndarray.__reduce_ex__(np.zeros(1), 5)[0]


def _mapped() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize")


@contextlib.contextmanager
def bounded_memory():
    """Allow this process ``HEADROOM`` more bytes of address space for the block."""
    try:
        limit = _mapped() + HEADROOM
    except OSError:
        pytest.skip("no /proc/self/status to measure the address space")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_refused(read, path: Path, error: type = DataError) -> str:
    """``read(path)`` raises ``error`` naming the file, within the memory bound."""
    with bounded_memory(), pytest.raises(error) as info:
        read(path)
    assert str(path) in str(info.value)
    assert "MemoryError" not in str(info.value)  # refused, not merely failed to allocate
    return str(info.value)


# -- idx (MNIST) ---------------------------------------------------------------------------
def huge_shape(draw, itemsize: int, need: int, largest: int) -> list[int]:
    """Dimensions (each <= ``largest``) of an array of at least ``need`` bytes."""
    dims = draw(st.lists(st.integers(1, largest), min_size=1, max_size=4))
    rest = itemsize * math.prod(dims[1:])
    dims[0] = min(largest, max(dims[0], -(-need // rest)))
    return dims


@st.composite
def forged_idx(draw):
    """An idx header whose shape needs >= 2 GiB, a few payload bytes, maybe gzipped."""
    code, itemsize = draw(st.sampled_from([(0x08, 1), (0x0B, 2), (0x0D, 4), (0x0E, 8)]))
    dims = huge_shape(draw, itemsize, 2 << 30, 2**32 - 1)  # an idx dimension is 32 bits
    blob = bytes([0, 0, code, len(dims)]) + np.array(dims, ">u4").tobytes() + draw(
        st.binary(max_size=64))
    return gzip.compress(blob) if draw(st.booleans()) else blob


@given(forged_idx())
def test_idx_headers_declaring_huge_shapes_are_refused(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("idx") / "forged-idx"
    path.write_bytes(blob)
    message = read_refused(read_idx, path)
    assert "truncated" in message


def _zeros(n: int, chunk: int = 1 << 24):
    for start in range(0, n, chunk):
        yield bytes(min(chunk, n - start))


def test_idx_gzip_bomb_is_refused_before_inflating(tmp_path):
    """A 324 MiB image file of zeros in 1.4 MB of gzip, its header honest."""
    rows = 18432
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1) as gz:
        gz.write(bytes([0, 0, 8, 3]) + np.array([1, rows, rows], ">u4").tobytes())
        for chunk in _zeros(rows * rows):
            gz.write(chunk)
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(buf.getvalue())
    assert rows * rows > HEADROOM and len(buf.getvalue()) < rows * rows // 200
    assert "may hold at most 64x" in read_refused(read_idx, path)


def test_mnist_images_of_zero_pixels(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.write_bytes(bytes([0, 0, 8, 3]) + np.array([2, 0, 0], ">u4").tobytes())
    labels.write_bytes(bytes([0, 0, 8, 1]) + np.array([2], ">u4").tobytes() + bytes([1, 2]))
    with pytest.raises(DataError, match=r"images.*0x0 pixels"):
        MNISTDataset(images, labels)


# -- CIFAR-10 pickles ------------------------------------------------------------------------
class Reduce:
    """Pickles as ``func(*args)`` (then ``__setstate__(state)``): the forged constructions."""

    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _newobj_batch(data: tuple, labels: tuple) -> bytes:
    """A protocol-2 batch whose arrays are ``NEWOBJ`` of ``numpy.ndarray`` with these args."""
    def part(obj):
        return pickle.dumps(obj, 2)[2:-1]  # without PROTO and STOP
    ndarray = b"cnumpy\nndarray\n"
    return (b"\x80\x02}(" + part("data") + ndarray + part(data) + b"\x81"
            + part("labels") + ndarray + part(labels) + b"\x81u.")


def _forge(how: str, shape: tuple, small: bytes) -> Reduce | tuple:
    u1 = np.dtype("u1")
    if how in ("ndarray", "newobj"):  # numpy.ndarray(shape, dtype, buffer, offset, strides)
        args = (shape, u1, small, 0, (0,) * len(shape))  # zero strides: any shape, one byte
        return args if how == "newobj" else Reduce(np.ndarray, args)
    if how == "reconstruct":  # the empty array NumPy makes first, made huge
        return Reduce(_RECONSTRUCT, (np.ndarray, shape, b"b"))
    if how == "setstate":  # an honest empty array, then a state claiming the huge shape
        return Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, shape, u1, False, small))
    return Reduce(_FROMBUFFER, (small, u1, shape, "C"))


@st.composite
def forged_cifar(draw):
    """A batch whose images and labels agree on a count of 1.4-5.6 million (4-16 GiB as float32)."""
    n = draw(st.integers(HUGE // (4 * 3072) + 1, HUGE // 3072))
    shape = draw(st.sampled_from([(n, 3072), (n * 3072,), (n, 3, 32, 32)]))
    small = draw(st.binary(min_size=1, max_size=32))
    how = draw(st.sampled_from(["ndarray", "newobj", "reconstruct", "setstate", "frombuffer"]))
    data, labels = _forge(how, shape, small), _forge(how, (n,), small)
    if how == "newobj":  # NEWOBJ: numpy.ndarray.__new__(numpy.ndarray, ...)
        return _newobj_batch(data, labels)
    return pickle.dumps({b"data": data, b"labels": labels}, draw(st.sampled_from([2, 4])))


@given(forged_cifar())
def test_cifar_pickles_declaring_huge_arrays_are_refused(tmp_path_factory, blob):
    folder = tmp_path_factory.mktemp("cifar")
    (folder / "test_batch").write_bytes(blob)
    assert len(blob) < 400
    read_refused(lambda path: CIFAR10Dataset(path.parent, train=False), folder / "test_batch")


def test_zero_stride_ndarray_of_the_report_is_refused(tmp_path):
    """The 101-byte batch of issue 17 that declared 200,000 images."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Reduce(np.ndarray, ((200_000, 3072), np.dtype("u1"),
                                                               b"x", 0, (0, 0))),
                                   b"labels": [0]}, 2))
    assert "calls numpy.ndarray directly" in read_refused(read_cifar_batch, path)


# -- needle checkpoints ----------------------------------------------------------------------
def _npy_header(dtype: str, shape: tuple) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                                "shape": shape})
    return buf.getvalue()


def _checkpoint(path: Path, shape: tuple, payload: bytes, manifest_shape=None,
                compress: int = zipfile.ZIP_STORED) -> None:
    manifest = json.dumps({"format": "needle-checkpoint", "version": 1,
                           "arrays": {"a0": {"dtype": "<f4", "shape": list(manifest_shape or shape)}},
                           "root": {"tensor": "a0", "requires_grad": False}}).encode()
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        zf.writestr("needle_manifest.npy", _npy_header("|u1", (len(manifest),)) + manifest)
        zf.writestr("a0.npy", _npy_header("<f4", shape) + payload)


@st.composite
def forged_checkpoint(draw):
    shape = tuple(huge_shape(draw, 4, HUGE, 2**40))
    return (shape, draw(st.binary(max_size=64)),
            draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])),
            (1,) if draw(st.booleans()) else None)  # the manifest agrees, or says otherwise


@given(forged_checkpoint())
def test_checkpoints_declaring_huge_arrays_are_refused(tmp_path_factory, case):
    shape, payload, compress, manifest_shape = case
    path = tmp_path_factory.mktemp("ckpt") / "forged.npz"
    _checkpoint(path, shape, payload, manifest_shape=manifest_shape, compress=compress)
    read_refused(ndl.load, path, ndl.CheckpointError)


def test_zip_directory_lying_about_sizes_is_refused(tmp_path):
    path = tmp_path / "lying.npz"
    _checkpoint(path, (2,), b"\0" * 8)
    raw = bytearray(path.read_bytes())
    for signature, field in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local, central entries
        at = -1
        while (at := raw.find(signature, at + 1)) >= 0:
            raw[at + field:at + field + 4] = (HUGE - 1).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    read_refused(ndl.load, path, ndl.CheckpointError)


def test_checkpoint_zip_bomb_is_refused_before_inflating(tmp_path):
    """320 MiB of float zeros deflated to 1.4 MB, every header honest."""
    n = (320 << 20) // 4
    path = tmp_path / "bomb.npz"
    manifest = json.dumps({"format": "needle-checkpoint", "version": 1,
                           "arrays": {"a0": {"dtype": "<f4", "shape": [n]}},
                           "root": {"ndarray": "a0"}}).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("needle_manifest.npy", _npy_header("|u1", (len(manifest),)) + manifest)
        with zf.open("a0.npy", "w", force_zip64=True) as member:
            member.write(_npy_header("<f4", (n,)))
            for chunk in _zeros(4 * n):
                member.write(chunk)
    assert 4 * n > HEADROOM and path.stat().st_size < 4 * n // 200
    assert "zip bomb" in read_refused(ndl.load, path, ndl.CheckpointError)


def test_checkpoint_member_header_must_match_the_manifest(tmp_path):
    path = tmp_path / "mismatch.npz"
    _checkpoint(path, (2,), b"\0" * 8, manifest_shape=(3,))
    with pytest.raises(ndl.CheckpointError, match=r"array 'a0' is <f4\[2\], the manifest says"):
        ndl.load(path)


def test_honest_checkpoints_still_load_under_the_bound(tmp_path):
    weights = np.arange(1 << 20, dtype=np.float32).reshape(1024, 1024)
    ndl.save({"w": ndl.Tensor(weights), "f": np.asfortranarray(weights[:3, :5]), "s": "text"},
             tmp_path / "c.npz")
    with bounded_memory():
        loaded = ndl.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(loaded["w"].numpy(), weights)
    np.testing.assert_array_equal(loaded["f"], weights[:3, :5])
    assert loaded["s"] == "text"


# -- Penn Treebank text ----------------------------------------------------------------------
def test_bad_utf8_is_reported_at_its_offset_in_the_file(tmp_path):
    text = b"first line\n" + b"word " * 50_000 + b"\n" + b"x" * 70_000 + b"\xff tail\n"
    (tmp_path / "test.txt").write_bytes(text)
    with pytest.raises(DataError) as info:
        Corpus(tmp_path, splits=("test",))
    offset = text.index(b"\xff")
    assert f"byte {offset:,}, line 3" in str(info.value)
