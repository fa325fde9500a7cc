"""Small helpers shared by the benchmark scripts: machine description, interleaved timing, summaries,
FLOP counting, memory readings and plain-text tables. The measuring itself is ``lightact bench``'s
(:mod:`lightact.bench`: environment, device sync, quantiles, FLOPs, resident memory); what is here
shapes it the way the scripts report it.

Timings on a shared machine are noisy, so the scripts time every candidate once per round and repeat the
rounds (A, B, C, A, B, C, ...): load then hits all candidates alike, and the ratios measured in one run are
more trustworthy than the absolute figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch

from lightact.bench.env import device_sync as synchronizer
from lightact.bench.env import environment
from lightact.bench.flops import count_flops as library_flops
from lightact.bench.memory import reset_peak_rss, status_kib
from lightact.bench.protocol import quantile

__all__ = [
    "count_flops",
    "current_rss_bytes",
    "format_table",
    "interleaved_timings",
    "machine_info",
    "matmul_peak_flops",
    "median",
    "parallel_region_cost",
    "peak_rss_bytes",
    "percentile",
    "reset_peak_rss",
    "synchronizer",
]


def machine_info(device: torch.device) -> dict[str, object]:
    """What a result depends on: CPU, cores, threads, torch version, accelerator, load (the
    scripts' short form of :func:`lightact.bench.env.environment`)."""
    env = environment(device)
    info: dict[str, object] = {
        "cpu": env["cpu"],
        "cores": env["cores_logical"],
        "torch": env["torch"],
        "threads": env["torch_threads"],
        "python": env["python"],
        "device": env["device"],
        "load_average_1_5_15": env["load_average_1_5_15"],
    }
    if "gpu" in env:
        info["gpu"] = env["gpu"]
    return info


def interleaved_timings(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
    progress: Callable[[str], None] | None = None,
    rotate: bool = False,
) -> dict[str, list[float]]:
    """Seconds per call of each function, timed in interleaved rounds A, B, C, A, B, C, ...

    The first ``warmup`` rounds run but are not recorded; ``repeats`` rounds are. ``rotate`` starts
    each round one function later (A, B, C, B, C, A, ...), so that whatever the place in a round
    costs (the call after another's large frees, say) falls on every function alike.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for round_index in range(warmup + repeats):
        recorded = round_index >= warmup
        shift = round_index % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            fn = fns[name]
            sync()
            start = time.perf_counter()
            fn()
            sync()
            elapsed = time.perf_counter() - start
            if recorded:
                times[name].append(elapsed)
            if progress is not None:
                kind = "timed" if recorded else "warm-up"
                progress(f"  round {round_index + 1}/{warmup + repeats} ({kind}) {name}: {elapsed:.3f} s")
    return times


def parallel_region_cost(threads: int, regions: int = 100) -> tuple[float, float]:
    """Seconds per parallel region with 1 thread and with ``threads`` threads: a contention gauge.

    Each call below is one small elementwise op that torch splits over its threads. On a quiet machine
    the multi-thread cost is at most about the single-thread one; when other processes keep the cores
    busy, every region waits for a descheduled worker thread (a scheduler time slice, milliseconds), and
    models made of many small ops slow down far more than models made of a few big ones.
    """
    previous = torch.get_num_threads()
    x = torch.zeros(200_000)
    costs = []
    for n in (1, threads):
        torch.set_num_threads(n)
        x.add_(1.0)
        start = time.perf_counter()
        for _ in range(regions):
            x.add_(1.0)
        costs.append((time.perf_counter() - start) / regions)
    torch.set_num_threads(previous)
    return costs[0], costs[1]


def matmul_peak_flops(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matrix product at the current thread count: the most this machine's
    BLAS gets out of its cores now, the yardstick for what a model achieves (median of ``repeats``)."""
    sync = synchronizer(device)
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    torch.mm(a, b)
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile, ``q`` in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    return quantile(sorted(values), q / 100)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call as ``lightact bench`` counts them (a multiply-add = 2; divide by 2 for MACs)."""
    return library_flops(fn).flops


def _status_bytes(field: str) -> int:
    kib = status_kib(field)
    if kib is None:
        raise KeyError(f"/proc/self/status has no {field} (these memory readings need Linux)")
    return kib * 1024


def current_rss_bytes() -> int:
    """Resident set size of this process now (``VmRSS``)."""
    return _status_bytes("VmRSS")


def peak_rss_bytes() -> int:
    """Largest resident set size of this process's address space (``VmHWM``).

    Not ``ru_maxrss``: on Linux a child started by fork + exec inherits its parent's RSS at the fork as
    its starting ``ru_maxrss``, so a small child of a big benchmark process would report the parent's size.
    """
    return _status_bytes("VmHWM")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (also readable as plain text), columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])
