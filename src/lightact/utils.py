"""Small pieces several commands share."""

from __future__ import annotations

import os


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
