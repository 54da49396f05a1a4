"""The one error type of ``needle.data``: a file or data set needle cannot use."""

from __future__ import annotations

from os import PathLike


class DataError(ValueError):
    """A data file or data set that cannot be used; the message names the file and the problem."""


class DataFileNotFound(DataError, FileNotFoundError):  # noqa: N818 - reads like FileNotFoundError
    """A data file that does not exist (also a ``FileNotFoundError``)."""


def missing_file(path: str | PathLike[str], what: str) -> DataFileNotFound:
    """The error for an absent file, saying what it should have held."""
    return DataFileNotFound(f"{path}: no such file ({what} expected here)")
