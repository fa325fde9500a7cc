"""Peak memory of one forward call, and what exactly the number measures.

* CUDA: ``torch.cuda.max_memory_allocated`` over the call minus the memory allocated before it:
  the peak of live tensors the call added (activations, workspaces), excluding the weights and the
  caching allocator's reserve. ONNX Runtime's CUDA allocations are invisible to it (reported as
  not measured).
* CPU: the resident-set high-water mark. Linux lets a process reset its ``VmHWM`` (writing ``5`` to
  ``/proc/self/clear_refs``); we reset it, read ``VmRSS``, run the call, read ``VmHWM``: the
  difference is the extra resident memory at the call's peak over what was resident before it.
  Weights and anything already resident are therefore *not* counted. glibc keeps freed blocks
  resident for reuse, which would hide most activations after the first call, so before the measured
  call free heap pages are returned to the OS (``malloc_trim(0)``) and during it the mmap threshold
  is lowered (``mallopt(M_MMAP_THRESHOLD, 64 KiB)``): every block the call touches is then faulted in
  afresh and counts. Allocators with their own arena (ONNX Runtime's) keep
  memory after their first run, so for them the caller measures the first call of a fresh session.
  Where ``clear_refs`` is not writable the method falls back to ``ru_maxrss`` (process lifetime peak),
  which only shows growth beyond any earlier peak, and says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GLIBC_DEFAULT_MAX_THRESHOLD = 32 * 1024 * 1024  # glibc's dynamic threshold ceiling on 64-bit


@dataclass(frozen=True)
class PeakMemory:
    bytes: int | None
    method: str

    @property
    def mib(self) -> float | None:
        return None if self.bytes is None else self.bytes / 2**20


def status_kib(field: str) -> int | None:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``, ...) in KiB; None where unreadable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset this process's resident high-water mark (``VmHWM``) to its current size, where Linux
    allows it (>= 4.0); False otherwise."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


@contextlib.contextmanager
def small_mmap_threshold(threshold: int = 64 * 1024) -> Iterator[bool]:
    """Trim the heap, then make glibc map (and unmap on free) every allocation above ``threshold``."""
    libc = _libc()
    ok = bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    if libc is not None and hasattr(libc, "malloc_trim"):
        # Hand free heap pages back to the OS: blocks freed by earlier calls would otherwise be
        # reused while already resident, and the measured call would look free of charge.
        libc.malloc_trim(0)
    try:
        yield ok
    finally:
        if ok:
            # Setting the threshold turns glibc's dynamic adjustment off: pin both thresholds to where
            # that adjustment ends up for large tensors (mmap 32 MiB, trim twice that), so later
            # timings do not pay for heap pages handed back to the OS after every call.
            libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_MAX_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * _GLIBC_DEFAULT_MAX_THRESHOLD)


def cpu_peak(fn: Callable[[], object]) -> PeakMemory:
    """Extra resident memory at the peak of ``fn()`` over the resident memory before it."""
    with small_mmap_threshold() as mapped:
        if reset_peak_rss():
            before = status_kib("VmRSS")
            fn()
            peak = status_kib("VmHWM")
            if before is not None and peak is not None:
                method = "cpu: VmHWM - VmRSS before (reset via clear_refs)"
                method += ", mmap threshold 64 KiB" if mapped else ", glibc reuse may hide memory"
                return PeakMemory(max(peak - before, 0) * 1024, method)
        before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        after_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return PeakMemory((after_max - before_max) * 1024, "cpu: ru_maxrss growth (lower bound)")


def cuda_peak(fn: Callable[[], object], device: torch.device) -> PeakMemory:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return PeakMemory(torch.cuda.max_memory_allocated(device) - before, "cuda: max_memory_allocated - before")


def peak_memory(fn: Callable[[], object], device: torch.device) -> PeakMemory:
    return cuda_peak(fn, device) if device.type == "cuda" else cpu_peak(fn)
