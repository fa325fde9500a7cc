"""Small pieces several commands share."""

from __future__ import annotations

import contextlib
import errno
import numbers
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def is_number(value: object, whole: bool = False) -> bool:
    """Whether ``value`` is a real number (a whole one with ``whole``), Python's or NumPy's; a bool
    is not one, though Python counts it as an int (``True`` for a thread count is a mistake)."""
    kind = numbers.Integral if whole else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool)


def available_cores() -> int:
    """Cores this process may run on: the affinity mask (what a container or taskset allows),
    ``os.cpu_count()`` where the platform has none."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def progress_bar(enabled: bool = True, unit: str | None = None):
    """A rich progress bar with count, elapsed and remaining time; ``unit`` labels the count."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    return Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: read-write for all, less the process's umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file over ``path``: atomic on POSIX within
    a filesystem, so a reader (or a rerun after a kill) sees the old file or the new one, never half.

    The new file gets the permissions any new file gets (0o666 less the umask; ``mkstemp`` alone
    would make it private). A full disk is reported as ``OSError(ENOSPC)`` naming ``path``, whatever
    the writer raised (torch's writer turns it into a C++ assertion), and the old file stays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _new_file_mode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(err, path.parent):
            raise OSError(errno.ENOSPC, "no space left on device", str(path)) from None
        raise


def _disk_full(err: BaseException, folder: Path) -> bool:
    """Whether ``err`` means the disk is full: an ENOSPC, or what writers that hide it raise
    (safetensors names it in its message; torch's C++ writer says only that a write failed)."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    if not isinstance(err, Exception):
        return False  # KeyboardInterrupt, SystemExit
    if "no space left on device" in str(err).lower():
        return True
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 1 << 20


_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(text: str, fallback: str, *, strip: str = "", max_length: int | None = None) -> str:
    """``text`` as a file name valid on every OS: each run of characters other than ASCII letters,
    digits, ``.``, ``_`` and ``-`` becomes one ``_``; then the characters in ``strip`` are removed from
    both ends and the name is cut to ``max_length``; ``fallback`` when nothing is left."""
    name = _UNSAFE_RUN.sub("_", text).strip(strip)
    return name[:max_length] or fallback


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on file ``path`` (created if missing) for the block: a second process
    asking for it is refused at once with a :class:`~lightact.errors.UsageError` naming ``what``.
    The kernel releases the lock when the holder exits, even by ``kill -9``; the file stays."""
    import fcntl

    from lightact.errors import UsageError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise UsageError(
                f"{what} is in use by {holder} (lock {path}); wait for it or choose another"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def check_unlocked(path: Path, what: str) -> None:
    """Refuse at once, before any work, when another process holds :func:`exclusive_lock` on ``path``."""
    if Path(path).is_file():
        with exclusive_lock(path, what):
            pass


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int | None = None) -> None:
    """Make this (worker) process end when its parent does, even by ``kill -9``: on Linux the
    kernel sends it SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread checks every second
    whether the parent is still there. ``parent`` is the pid the process was started by, when
    known: had it died already, this process ends now. A process pool's ``initializer``; the
    setting is not inherited, so each process that should follow its parent calls this itself."""
    import signal
    import sys

    parent = os.getppid() if parent is None else parent
    if os.getppid() != parent:
        os._exit(1)
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the parent died before the request took effect
                os._exit(1)
            return
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
