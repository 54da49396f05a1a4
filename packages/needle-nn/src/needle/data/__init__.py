"""needle.data: datasets, a batching ``DataLoader`` and augmentations, as in CMU 10-714.

Usage::

    import needle as ndl

    train = ndl.data.DigitsDataset(train=True, test_size=0.2, seed=0)  # built in, no download
    loader = ndl.data.DataLoader(train, batch_size=64, shuffle=True)
    for X, y in loader:        # X: float32 (64, 64) in [0, 1]; y: int64 (64,)
        ...

    mnist = ndl.data.MNISTDataset("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                                  transforms=[ndl.data.RandomCrop(3), ndl.data.RandomFlipHorizontal()])
    cifar = ndl.data.CIFAR10Dataset("cifar-10-batches-py", train=True)   # (3, 32, 32) images
    corpus = ndl.data.Corpus("ptb")   # train.txt, test.txt (or ptb.train.txt...); splits=("test",)
    batches = ndl.data.batchify(corpus.train, batch_size=16, device=None, dtype="float32")
    x, target = ndl.data.get_batch(batches, 0, bptt=35)

Why it looks like this:

* **Course order and numbers.** Shuffling, ``RandomFlipHorizontal`` and
  ``RandomCrop`` draw from NumPy's global generator exactly as the course does, so
  ``np.random.seed(n)`` reproduces its batches and augmented images.
* **One gather per batch.** Datasets that set ``supports_batch_index`` (all of
  needle's) are indexed once per batch with an integer array; others are asked
  sample by sample and stacked.
* **dtypes.** The loader gives floating-point arrays in its ``dtype`` (float32) and
  integer ones (labels, token ids) as int64, so labels stay exact integers.
* **Loading never runs code, and bad files say why.** idx files are checked
  against their header; CIFAR pickles go through an allow-list unpickler that
  accepts only NumPy arrays and plain containers. Every problem is a
  ``DataError`` (a ``ValueError``) naming the file; a missing file is also a
  ``FileNotFoundError``.
* **DigitsDataset** (scikit-learn's 8x8 digits, the ``digits`` extra) is the
  default data set: 1,797 images as 64 features in [0, 1], with a seeded,
  deterministic train/test split (``test_size`` fraction or count, ``seed``).
"""

from .data_basic import DataLoader, Dataset
from .data_transforms import RandomCrop, RandomFlipHorizontal, Transform
from .datasets import (
    CIFAR10Dataset,
    Corpus,
    Dictionary,
    DigitsDataset,
    ImageDataset,
    MNISTDataset,
    NDArrayDataset,
    batchify,
    get_batch,
    load_digits_arrays,
    read_cifar_batch,
)
from .errors import DataError, DataFileNotFound
from .readers import read_idx, read_pickle

__all__ = [
    "CIFAR10Dataset", "Corpus", "DataError", "DataFileNotFound", "DataLoader", "Dataset",
    "Dictionary", "DigitsDataset", "ImageDataset", "MNISTDataset", "NDArrayDataset",
    "RandomCrop", "RandomFlipHorizontal", "Transform", "batchify", "get_batch",
    "load_digits_arrays", "read_cifar_batch", "read_idx", "read_pickle",
]
