"""Writing a file so that readers see the old version or the new one, never a mix or a link's target.

``atomic_write(path, write)`` hands ``write`` a fresh temporary file next to
``path``, created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (so nothing planted at
that name, a symbolic link least of all, is ever opened), then flushes and
``fsync``\\ s it and ``os.replace``\\ s it over ``path``. A crash or Ctrl-C in
between leaves the previous file intact; the temporary is removed unless the
process is killed outright, and ``stale_temporaries`` finds those leftovers by
their name (``.<name>.<12 hex digits>.tmp``) so the owner of a directory can
remove them. A symbolic link at ``path`` itself is refused, never followed or
silently replaced: someone put it there on purpose.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["atomic_write", "refuse_link", "stale_temporaries", "temporary_name"]

_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp")
_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
          | getattr(os, "O_BINARY", 0))


def temporary_name(path: str | os.PathLike[str]) -> str:
    """A fresh temporary path next to ``path`` (same directory, so ``os.replace`` is atomic)."""
    directory, name = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` by what ``write(f)`` writes to a binary file, atomically and durably.

    Raises ``FileNotFoundError`` when the directory is missing and ``OSError``
    (``ELOOP``) when ``path`` is a symbolic link; other ``OSError`` s (a full
    disk, a read-only directory) pass through with the previous file intact.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"cannot write {path!r}: directory {directory!r} "
                                f"does not exist", path)
    refuse_link(path)
    tmp = temporary_name(path)
    fd = os.open(tmp, _FLAGS, 0o666)  # 0o666: the umask decides, as for any new file
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        refuse_link(path)  # planted while we wrote? (os.replace would replace, not follow, it)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def refuse_link(path: str) -> None:
    """An ``OSError`` (``ELOOP``) naming ``path`` and its target when ``path`` is a symbolic link."""
    if os.path.islink(path):
        raise OSError(errno.ELOOP, f"refusing to write through the symbolic link {path} -> "
                      f"{os.readlink(path)} (remove it first)", path)


def stale_temporaries(directory: str | os.PathLike[str], names: tuple[str, ...]) -> list[str]:
    """Leftover temporaries of ``atomic_write`` for the files ``names`` in ``directory``.

    Only the directory's owner may remove them: a live writer's temporary has the same shape.
    """
    found = []
    for entry in os.scandir(directory):
        match = _TEMPORARY.fullmatch(entry.name)
        if match and match["name"] in names:
            found.append(entry.path)
    return sorted(found)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
