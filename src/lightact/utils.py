"""Small pieces several commands share."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path


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


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file over ``path``: atomic on POSIX within
    a filesystem, so a reader (or a rerun after a kill) sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by the owner only
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(text: str, fallback: str, *, strip: str = "", max_length: int | None = None) -> str:
    """``text`` as a file name valid on every OS: each run of characters other than ASCII letters,
    digits, ``.``, ``_`` and ``-`` becomes one ``_``; then the characters in ``strip`` are removed from
    both ends and the name is cut to ``max_length``; ``fallback`` when nothing is left."""
    name = _UNSAFE_RUN.sub("_", text).strip(strip)
    return name[:max_length] or fallback
