"""The run directory: one run at a time, and every file in it written safely.

* **One run per directory.** ``claim`` takes an exclusive ``flock`` on
  ``.needle-train.lock`` before anything else is written; the OS releases it when
  the process ends, however it ends, so a killed run never leaves a stale lock.
  A second ``needle train`` on the same directory is a ``CLIError`` naming the
  process that holds it.
* **One writer.** Every file goes through ``needle.atomic.atomic_write`` (a fresh
  ``O_EXCL | O_NOFOLLOW`` temporary, ``fsync``, ``os.replace``): nothing planted
  at a temporary name is opened, a symbolic link at a final name is refused, and
  a reader sees the old file or the new one. Leftover temporaries of a killed
  run are removed by the next run that claims the directory.
* **One line per failure.** An ``OSError`` of an output path (read-only, full
  disk, a file in the way) becomes a ``CLIError`` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from needle.atomic import atomic_write, refuse_link, stale_temporaries

from .options import CLIError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK = ".needle-train.lock"
CHECKPOINT, METRICS, CURVES = "checkpoint.npz", "metrics.jsonl", "curves.png"
WRITTEN = (CHECKPOINT, METRICS, CURVES)  # the files whose stale temporaries a claim removes


def output_error(path: Path | str, exc: OSError, doing: str = "write") -> CLIError:
    """One line for an output path that cannot be written."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason += " (the previous files in the directory are intact)"
    return CLIError(f"cannot {doing} {path}: {reason}")


@contextlib.contextmanager
def writing(path: Path | str, doing: str = "write") -> Iterator[None]:
    """Turn an ``OSError`` inside the block into ``output_error(path)``."""
    try:
        yield
    except OSError as exc:
        raise output_error(path, exc, doing) from exc


def write_file(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """``atomic_write`` with its failures as one line naming ``path``."""
    with writing(path):
        atomic_write(path, write)


def write_text(path: Path, text: str) -> None:
    write_file(path, lambda f: f.write(text.encode("utf-8")))


class RunLock:
    """An exclusive hold on a run directory for the life of this process (or ``release``)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK
        self.fd: int | None = None
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        with writing(self.path, "lock"):
            refuse_link(str(self.path))
            self.fd = os.open(self.path, flags, 0o666)
            info = os.fstat(self.fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                self.release()
                raise OSError(errno.EEXIST, "something other than needle's lock file is there "
                              "(not a regular file with one link); remove it")
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(self.fd)
            self.release()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CLIError(f"{directory} is in use by another 'needle train' ({holder}): one "
                               f"run per directory; wait for it or choose another --out") from exc
            raise output_error(self.path, exc, "lock") from exc
        with writing(self.path, "lock"):
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"pid {os.getpid()}\n".encode())

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _read_holder(fd: int) -> str:
    """The holder's ``pid N``. It writes it just after it locks, so a run that started at
    the same moment as this one may not have yet: a few short waits give it the time."""
    for _ in range(5):
        try:
            text = os.pread(fd, 100, 0).decode("ascii", "replace").strip()
        except OSError:
            break
        if text:
            return text
        time.sleep(0.02)
    return "a process that is starting"


def claim(directory: Path) -> RunLock:
    """Create ``directory`` if needed, lock it, and remove stale temporaries of a killed run."""
    with writing(directory, "create the run directory"):
        if directory.exists() and not directory.is_dir():
            raise CLIError(f"--out {directory}: exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
    lock = RunLock(directory)
    try:
        for name in WRITTEN:  # refused now rather than after an epoch of training
            with writing(directory / name):
                refuse_link(str(directory / name))
        with writing(directory, "clean up"):
            for tmp in stale_temporaries(directory, WRITTEN):
                os.unlink(tmp)  # a symbolic link is removed itself, never its target
    except BaseException:
        lock.release()
        raise
    return lock


def has_traces(directory: Path) -> bool:
    """Whether a ``needle train`` started in ``directory`` (it may have died before a checkpoint)."""
    return any(os.path.lexists(directory / name) for name in (LOCK, METRICS))
