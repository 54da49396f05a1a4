"""Penn Treebank language-model data: ``Dictionary``, ``Corpus``, ``batchify``, ``get_batch``.

Course semantics: words are split on whitespace, ``<eos>`` ends every line, and
ids are given in order of first appearance (train before test), so the ids match
the course's for the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from needle import Device, Tensor, default_device
from needle import device as as_device

from ..errors import DataError, missing_file

SPLITS = ("train", "valid", "test")


class Dictionary:
    """Word <-> id, ids assigned in order of first appearance."""

    def __init__(self) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []

    def add_word(self, word: str) -> int:
        """The id of ``word``, adding it first if it is new."""
        idx = self.word2idx.get(word)
        if idx is None:
            idx = self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return idx

    def __len__(self) -> int:
        return len(self.idx2word)


def find_split_file(base_dir: str | PathLike[str], split: str) -> Path:
    """``<split>.txt`` (the course's name) or ``ptb.<split>.txt`` (the distribution's)."""
    base = Path(base_dir)
    candidates = [base / f"{split}.txt", base / f"ptb.{split}.txt"]
    for path in candidates:
        if path.is_file():
            return path
    raise missing_file(" or ".join(map(str, candidates)), f"the Penn Treebank {split} text")


class Corpus:
    """Token ids of the Penn Treebank text files in ``base_dir``.

    ``splits`` names the files to read, in order (default: the course's train then
    test); each becomes an attribute (``corpus.train``, a list of ids). A missing
    file is an error naming it, so ``splits=("test",)`` reads a folder holding only
    the test text. ``max_lines`` reads at most that many lines of each file.
    """

    def __init__(self, base_dir: str | PathLike[str], max_lines: int | None = None,
                 splits: Sequence[str] = ("train", "test")) -> None:
        if max_lines is not None and (int(max_lines) != max_lines or max_lines < 0):
            raise DataError(f"Corpus: max_lines must be a non-negative integer or None, "
                            f"got {max_lines!r}")
        unknown = [s for s in splits if s not in SPLITS]
        if unknown:
            raise DataError(f"Corpus: unknown splits {unknown}; choose from {SPLITS}")
        self.dictionary = Dictionary()
        self.splits = tuple(splits)
        for split in self.splits:
            setattr(self, split, self.tokenize(find_split_file(base_dir, split), max_lines))

    def __getattr__(self, name: str) -> Any:
        if name in SPLITS:
            raise DataError(f"Corpus: the {name!r} split was not read (splits={self.splits}); "
                            f"pass splits=(..., {name!r}) to read it")
        raise AttributeError(name)

    def tokenize(self, path: str | PathLike[str], max_lines: int | None = None) -> list[int]:
        """Ids of the words of ``path``, with ``<eos>`` after each line; adds new words."""
        ids: list[int] = []
        add = self.dictionary.add_word
        try:
            with open(path, encoding="utf-8") as f:
                for i, line in enumerate(f):
                    if max_lines is not None and i >= max_lines:
                        break
                    ids.extend(add(word) for word in line.split())
                    ids.append(add("<eos>"))
        except FileNotFoundError:
            raise missing_file(path, "a text file") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({_bad_utf8(path, exc)})") from exc
        return ids


def _bad_utf8(path: str | PathLike[str], exc: UnicodeDecodeError) -> str:
    """Where the first invalid byte sits in the file (the decoder's own offset is per chunk)."""
    offset = 0
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    return f"byte {offset + bad.start:,}, line {number}: {bad.reason}"
                offset += len(line)
    except OSError:
        pass
    return exc.reason


def batchify(data: Sequence[int] | np.ndarray, batch_size: int, device: Device | str | None = None,
             dtype: Any = None) -> np.ndarray:
    """Ids laid out in ``batch_size`` columns: shape (len(data) // batch_size, batch_size).

    Column ``j`` holds the ``j``-th contiguous stretch of the text; the tail that
    does not fill a row is dropped. Returns a NumPy array (``dtype``, default int64);
    ``device`` is accepted for the course's signature: ``get_batch`` places the data.
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise DataError(f"batchify: batch_size must be a positive integer, got {batch_size!r}")
    nbatch = len(data) // batch_size
    if nbatch == 0:
        raise DataError(f"batchify: {len(data)} tokens cannot fill one row of batch_size {batch_size}")
    ids = np.asarray(data[:nbatch * batch_size], dtype=dtype if dtype is not None else np.int64)
    return np.ascontiguousarray(ids.reshape(batch_size, nbatch).T)


def get_batch(batches: np.ndarray, i: int, bptt: int, device: Device | str | None = None,
              dtype: Any = None) -> tuple[Tensor, Tensor]:
    """(data (seq_len, bs), target (seq_len * bs,)) starting at row ``i``, where
    ``seq_len = min(bptt, len(batches) - 1 - i)``; the target is the data shifted by one.
    ``dtype`` defaults to the batches' own."""
    batches = np.asarray(batches)
    if batches.ndim != 2:
        raise DataError(f"get_batch: batches must be 2-D (nbatch, batch_size), "
                        f"got shape {batches.shape}")
    if not 0 <= i < len(batches) - 1:
        raise DataError(f"get_batch: row i={i} leaves no target; use 0 <= i < {len(batches) - 1}")
    if bptt < 1:
        raise DataError(f"get_batch: bptt must be positive, got {bptt}")
    seq_len = min(bptt, len(batches) - 1 - i)
    dev = as_device(device) if device is not None else default_device()
    dtype = np.dtype(dtype) if dtype is not None else batches.dtype
    data = batches[i:i + seq_len]
    target = batches[i + 1:i + 1 + seq_len].reshape(-1)
    return (Tensor.make_const(dev.backend.array(data, dtype), device=dev),
            Tensor.make_const(dev.backend.array(target, dtype), device=dev))
