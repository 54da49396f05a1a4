"""The data sets of ``needle.data`` (course module layout)."""

from .cifar10_dataset import CIFAR10Dataset, read_cifar_batch
from .digits_dataset import DigitsDataset, load_digits_arrays
from .image_dataset import ImageDataset
from .mnist_dataset import MNISTDataset
from .ndarray_dataset import NDArrayDataset
from .ptb_dataset import Corpus, Dictionary, batchify, get_batch
