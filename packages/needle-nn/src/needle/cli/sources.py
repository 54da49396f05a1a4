"""The data of a run: which files each data set needs, and the train/test split.

A directory without the expected files is a ``CLIError`` naming the missing file
and, where it helps, ``--holdout``: with ``--holdout N`` a run needs only the test
files and trains on all but ``N`` of their examples (a fixed, seeded split, the
same for every training seed), so a user holding just MNIST's ``t10k`` files can
still train and measure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import data
from ..data.datasets.digits_dataset import split_indices
from ..data.datasets.ptb_dataset import find_split_file
from .options import CLIError, Config

SPLIT_SEED = 0  # the held-out part never depends on --seed
MNIST_FILES = {"train images": "train-images-idx3-ubyte", "train labels": "train-labels-idx1-ubyte",
               "test images": "t10k-images-idx3-ubyte", "test labels": "t10k-labels-idx1-ubyte"}


@dataclass
class Images:
    """Classification data: ``train``/``test`` datasets of (image, label)."""

    train: data.Dataset
    test: data.Dataset
    features: int  # values per image as the dataset returns it (flat for the MLP)
    note: str


@dataclass
class Tokens:
    """Language-model data: token ids of the training and evaluation text."""

    train: np.ndarray
    test: np.ndarray
    vocab: list[str]
    note: str

    @property
    def vocab_sha256(self) -> str:
        return hashlib.sha256("\n".join(self.vocab).encode("utf-8")).hexdigest()


def load(cfg: Config) -> Images | Tokens:
    """The data of ``cfg``; a ``CLIError`` naming the file when something is missing."""
    try:
        if cfg.dataset == "digits":
            return _digits(cfg)
        folder = Path(cfg.data_dir or ".")
        if not folder.is_dir():
            raise CLIError(f"--data-dir {folder}: no such directory (the {cfg.dataset} files are "
                           f"expected there; see 'needle train --help')")
        if cfg.dataset == "mnist":
            return _nonempty(_mnist(cfg, folder), folder)
        if cfg.dataset == "cifar10":
            return _nonempty(_cifar10(cfg, folder), folder)
        return _ptb(cfg, folder)
    except data.DataError as exc:
        raise CLIError(str(exc)) from exc
    except ModuleNotFoundError as exc:
        raise CLIError(str(exc)) from exc


def _nonempty(images: Images, folder: Path) -> Images:
    """Zero examples to train or test on is bad data, not a run that divides by zero."""
    if len(images.train) == 0 or len(images.test) == 0:
        raise CLIError(f"--data-dir {folder}: {images.note}: no examples to "
                       f"{'train' if len(images.train) == 0 else 'evaluate'} on")
    return images


def _holdout(n: int, cfg: Config, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < cfg.holdout < n:
        raise CLIError(f"--holdout {cfg.holdout}: must be between 1 and {n - 1} ({what} has "
                       f"{n} examples)")
    return split_indices(n, int(cfg.holdout), SPLIT_SEED)


def _parts(images: np.ndarray, labels: np.ndarray, cfg: Config, what: str
           ) -> tuple[data.NDArrayDataset, data.NDArrayDataset]:
    train_idx, test_idx = _holdout(len(labels), cfg, what)
    return (data.NDArrayDataset(images[train_idx], labels[train_idx]),
            data.NDArrayDataset(images[test_idx], labels[test_idx]))


def _digits(cfg: Config) -> Images:
    test_size = cfg.holdout if cfg.holdout is not None else 0.2
    if cfg.holdout is not None and not 0 < cfg.holdout < 1797:
        raise CLIError(f"--holdout {cfg.holdout}: must be between 1 and 1796 (digits has 1797 images)")
    train = data.DigitsDataset(train=True, test_size=test_size, seed=SPLIT_SEED)
    test = data.DigitsDataset(train=False, test_size=test_size, seed=SPLIT_SEED)
    return Images(train, test, 64, f"digits: {len(train):,} train / {len(test):,} held-out images")


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _mnist(cfg: Config, folder: Path) -> Images:
    needed = ["test images", "test labels"]
    if cfg.holdout is None:
        needed = ["train images", "train labels", *needed]
    paths = {}
    for what in needed:
        path = _find(folder, MNIST_FILES[what])
        if path is None:
            hint = ("; or add --holdout N to train on the t10k files alone and evaluate on N of "
                    "them" if what.startswith("train") else "")
            raise CLIError(f"--data-dir {folder}: missing the MNIST {what} "
                           f"({MNIST_FILES[what]}[.gz]){hint}")
        paths[what] = path
    test = data.MNISTDataset(paths["test images"], paths["test labels"])
    if cfg.holdout is not None:
        train_part, test_part = _parts(test.images, test.labels, cfg, "the MNIST t10k set")
        return Images(train_part, test_part, test.images.shape[1],
                      f"mnist t10k split: {len(train_part):,} train / {len(test_part):,} held-out")
    train = data.MNISTDataset(paths["train images"], paths["train labels"])
    return Images(train, test, test.images.shape[1],
                  f"mnist: {len(train):,} train / {len(test):,} test images")


def _cifar10(cfg: Config, folder: Path) -> Images:
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    names = ["test_batch"] + ([] if cfg.holdout is not None
                              else [f"data_batch_{i}" for i in range(1, 6)])
    for name in names:
        if not (folder / name).is_file():
            hint = "; or add --holdout N to train on test_batch alone" if name != "test_batch" else ""
            raise CLIError(f"--data-dir {folder}: missing the CIFAR-10 batch file {name} "
                           f"(from cifar-10-python.tar.gz){hint}")
    test = data.CIFAR10Dataset(folder, train=False)
    if cfg.holdout is not None:
        train_part, test_part = _parts(test.images, test.labels, cfg, "the CIFAR-10 test batch")
        return Images(train_part, test_part, 3 * 32 * 32,
                      f"cifar10 test split: {len(train_part):,} train / {len(test_part):,} held-out")
    train = data.CIFAR10Dataset(folder, train=True)
    return Images(train, test, 3 * 32 * 32,
                  f"cifar10: {len(train):,} train / {len(test):,} test images")


def _ptb(cfg: Config, folder: Path) -> Tokens:
    if cfg.holdout is not None:
        corpus = data.Corpus(folder, splits=("test",))
        ids = np.asarray(corpus.test, dtype=np.int64)
        if not 0 < cfg.holdout < len(ids):
            raise CLIError(f"--holdout {cfg.holdout}: must be between 1 and {len(ids) - 1} tokens "
                           f"(the test text has {len(ids)})")
        train, test = ids[:-cfg.holdout], ids[-cfg.holdout:]
        note = f"ptb test text split: {len(train):,} train / {len(test):,} held-out tokens"
    else:
        try:
            find_split_file(folder, "train")
        except data.DataFileNotFound as exc:
            raise CLIError(f"--data-dir {folder}: {exc}; or add --holdout N to train on the test "
                           f"text alone and evaluate on its last N tokens") from exc
        corpus = data.Corpus(folder, splits=("train", "test"))
        train = np.asarray(corpus.train, dtype=np.int64)
        test = np.asarray(corpus.test, dtype=np.int64)
        note = f"ptb: {len(train):,} train / {len(test):,} test tokens"
    return Tokens(train, test, list(corpus.dictionary.idx2word),
                  f"{note}, {len(corpus.dictionary):,} words")
