"""Errors a user can fix, and how the command line reports them.

The library raises these where it checks its inputs; ``lightact``'s single entry point
(:func:`lightact.cli.main`) turns each into one line on stderr and an exit status: 2 for how a
command was called or configured (:class:`UsageError`), 1 for what an input file holds
(:class:`DataError`). Both are ``ValueError`` s, so library callers that catch ``ValueError`` keep
working. :func:`user_message` also reads the standard exceptions that mean a user's mistake (a
missing file, a full disk, a read-only folder) the same way; anything else is a bug, reported in
one line too unless ``--debug`` asks for the traceback.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

__all__ = [
    "DataError",
    "LightactError",
    "UnknownNameError",
    "UnsafeFileError",
    "UsageError",
    "check_writable_dir",
    "user_message",
]

USAGE_EXIT = 2
DATA_EXIT = 1


class LightactError(ValueError):
    """A problem the user can fix; the message names it, the file and the sample or key."""

    exit_code = DATA_EXIT


class UsageError(LightactError):
    """The command was called or configured wrongly: an option, a config key, a path given."""

    exit_code = USAGE_EXIT


class DataError(LightactError):
    """An input file holds something unusable: a bad sample, a broken video, a foreign checkpoint."""

    exit_code = DATA_EXIT


class UnsafeFileError(DataError):
    """A file asks for something a file may not decide: code to run, another file to load, a download."""


class UnknownNameError(UsageError, KeyError):
    """A name (model, layout, split, transform) that is not one of those known; a ``KeyError`` too,
    as lookups by name raise, but printed as its message rather than as a quoted key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _one_line(text: str) -> str:
    """``text`` with its lines joined, so a message stays one line on a terminal and in a log."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _os_message(err: OSError) -> str:
    reason = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOENT: "no such file or directory",
        errno.EISDIR: "is a folder, not a file",
        errno.ENOTDIR: "not a folder",
        errno.EEXIST: "already exists",
    }.get(err.errno or -1)
    if reason is None or err.filename is None:
        return str(err)  # our own OSErrors carry their message (and path) in the text
    target = err.filename if err.filename2 is None else f"{err.filename} -> {err.filename2}"
    return f"{target}: {reason}"


def user_message(err: BaseException) -> tuple[str, int] | None:
    """``(one line, exit status)`` for an error that is the user's to fix, ``None`` for a bug."""
    if isinstance(err, LightactError):
        return _one_line(err), err.exit_code
    if isinstance(err, FileNotFoundError | FileExistsError | NotADirectoryError | IsADirectoryError):
        return _one_line(_os_message(err)), USAGE_EXIT
    if isinstance(err, OSError):  # full disk, permissions, read-only folders, I/O errors
        return _one_line(_os_message(err)), DATA_EXIT
    if isinstance(err, ValueError):  # readers and checks across the library raise ValueError
        return _one_line(err), DATA_EXIT
    if isinstance(err, ImportError) and type(err).__name__ == "MissingDependencyError":
        return _one_line(err), USAGE_EXIT
    if isinstance(err, MemoryError):
        return "out of memory (try a smaller batch_size, fewer workers or shorter clips)", DATA_EXIT
    return None


def check_writable_dir(path: str | Path, what: str) -> Path:
    """Make sure files can be created in folder ``path`` before long work starts, without creating
    it: the folder, or the nearest folder above it that exists, must take a new file. Raise
    :class:`UsageError` naming ``what`` and the path otherwise. Creating a file is the only test that
    holds in every case (permissions, read-only mounts, running as root)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{what} {path} cannot be made: {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".lightact-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = _os_message(err).rsplit(": ", 1)[-1]
        raise UsageError(f"{what} {path} is not writable: {existing}: {reason}") from None
    return path
