"""The timing protocol: warm-up, timed repeats under a time budget, robust statistics.

Every measurement is untimed warm-up calls, then timed calls (:class:`BenchSpec` says how many and
for how long); each phase stops early once it has used its share of ``budget_s`` (keeping at least
``min_repeats`` timed calls and one warm-up call), so a 5-second video model cannot hold the whole
benchmark up, while a 10-millisecond one is timed over many calls. The counts actually done are
returned with the samples and written into every report row.

Statistics are the median and the 90th percentile (linear interpolation between order statistics),
and the spread as the interquartile range relative to the median: robust to the odd slow call caused
by another process on a shared machine, where means and standard deviations are not.

The timed calls are split into ``rounds`` spread over the whole benchmark (the runner times every
model once per round, so round ``r`` of one model lies minutes from round ``r + 1``). A disturbance
that lasts seconds to a minute (a neighbour on the host, a clock change) then falls into one round of
a measurement instead of all of it, and the median of the pooled samples shrugs it off; the drift
between round medians is reported as what a second run of the benchmark may see.

Noise is measured, not assumed away: :class:`LoadMeter` records how much CPU *other* processes used
while the timed calls ran. Above ``BUSY_CORES`` the runner measures again (``busy_retries`` times)
and keeps the quieter measurement; the figure goes into every row either way.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

# Above this many cores used by other processes during a measurement, it is flagged and redone.
BUSY_CORES = 0.25


@dataclass(frozen=True)
class BenchSpec:
    """How to time one (model, backend, batch): call counts, minimum times and the wall-clock budget.

    Warm-up: at least ``warmup`` calls and ``warmup_s`` seconds. Timing: at least ``repeats`` calls
    and ``min_time_s`` seconds (so a 10 ms model is timed over ~100 calls, not 10), at most
    ``max_repeats`` calls. ``budget_s`` caps both phases for slow models (warm-up gets a third of
    it), but never below ``min_repeats`` timed calls and one warm-up call.
    """

    warmup: int = 3
    repeats: int = 10
    min_repeats: int = 10
    budget_s: float = 15.0
    busy_retries: int = 1  # measure again when other processes used > BUSY_CORES meanwhile
    wait_quiet_s: float = 0.0  # before a re-measurement, wait up to this long for a quiet machine
    warmup_s: float = 0.5
    min_time_s: float = 3.0
    max_repeats: int = 100
    rounds: int = 5  # the timed calls are split into this many rounds, spread over the whole run

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.busy_retries < 0 or not 1 <= self.min_repeats <= self.repeats:
            raise ValueError(
                f"invalid bench spec {self}: need warmup >= 0, busy_retries >= 0, 1 <= min_repeats <= repeats"
            )
        if self.budget_s <= 0 or self.max_repeats < self.repeats:
            raise ValueError("budget_s must be positive and max_repeats >= repeats")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")

    def for_round(self, index: int) -> BenchSpec:
        """This spec's share for round ``index``: counts and times divided by ``rounds``. The first
        round warms up in full; later ones re-warm with one call (other models ran in between and
        evicted this one's caches)."""
        if self.rounds == 1:
            return self
        share = self.rounds

        def part(n: int) -> int:
            return max(1, math.ceil(n / share))

        repeats = part(self.repeats)
        return replace(
            self,
            warmup=self.warmup if index == 0 else min(self.warmup, 1),
            warmup_s=self.warmup_s if index == 0 else 0.0,
            repeats=repeats,
            min_repeats=min(part(self.min_repeats), repeats),
            budget_s=self.budget_s / share,
            min_time_s=self.min_time_s / share,
            max_repeats=max(part(self.max_repeats), repeats),
            rounds=1,
        )


def quantile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation between order statistics (numpy's default)."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class Stats:
    """Summary of timed calls, in seconds."""

    n: int
    median: float
    p90: float
    q1: float
    q3: float
    mean: float
    min: float
    max: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def spread(self) -> float:
        """Interquartile range over the median (0.05 = the middle half lies within 5 % of it)."""
        return self.iqr / self.median if self.median > 0 else math.nan

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        s = sorted(samples)
        return cls(
            n=len(s),
            median=statistics.median(s),
            p90=quantile(s, 0.9),
            q1=quantile(s, 0.25),
            q3=quantile(s, 0.75),
            mean=statistics.fmean(s),
            min=s[0],
            max=s[-1],
        )


def _busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """CPU used by *other* processes while a measurement ran, in cores (0.5 = half a core busy).

    A timing on a shared machine is only as good as the machine was quiet: this is the number that
    says so. Computed as (all busy CPU time - this process's CPU time) / wall time.
    """

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.busy = _busy_seconds()
        self.own = time.process_time()

    def other_cores(self) -> float | None:
        busy = _busy_seconds()
        wall = time.perf_counter() - self.wall
        if busy is None or self.busy is None or wall <= 0:
            return None
        return max((busy - self.busy) - (time.process_time() - self.own), 0.0) / wall


def wait_until_quiet(max_wait_s: float, probe_s: float = 0.5, threshold: float = BUSY_CORES) -> float:
    """Wait (up to ``max_wait_s``) until other processes use at most ``threshold`` cores over a
    ``probe_s`` window; returns the seconds waited."""
    start = time.perf_counter()
    while True:
        meter = LoadMeter()
        time.sleep(probe_s)
        load = meter.other_cores()
        waited = time.perf_counter() - start
        if load is None or load <= threshold or waited >= max_wait_s:
            return waited


@dataclass
class Timing:
    """What a measurement did: untimed warm-up calls, the timed samples (seconds), the first call,
    the CPU other processes used meanwhile (cores) and, when it was timed in rounds, each round's
    median."""

    warmup_done: int
    samples: list[float] = field(default_factory=list)
    first_call_s: float | None = None  # the first warm-up call alone (includes compilation, if any)
    other_load: float | None = None
    round_medians: list[float] = field(default_factory=list)

    @property
    def stats(self) -> Stats:
        return Stats.of(self.samples)

    @property
    def drift(self) -> float | None:
        """Range of the round medians over the pooled median (None for a single round)."""
        if len(self.round_medians) < 2:
            return None
        return (max(self.round_medians) - min(self.round_medians)) / self.stats.median

    def add_round(self, other: Timing) -> None:
        """Pool another round's calls into this measurement; the load kept is the worst seen."""
        self.warmup_done += other.warmup_done
        self.samples.extend(other.samples)
        if self.first_call_s is None:
            self.first_call_s = other.first_call_s
        loads = [v for v in (self.other_load, other.other_load) if v is not None]
        self.other_load = max(loads) if loads else None
        self.round_medians.append(other.stats.median)

    def as_dict(self) -> dict:
        return asdict(self)


def measure(
    fn: Callable[[], object],
    spec: BenchSpec,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Warm up, then time ``fn`` per :class:`BenchSpec`; ``sync`` waits for queued device work.

    The garbage collector is paused during the timed calls so that a collection triggered by the
    benchmark's own bookkeeping does not land inside one sample.
    """
    timing = Timing(warmup_done=0)
    start = clock()
    warmup_budget = spec.budget_s / 3
    while spec.warmup > 0:
        t0 = clock()
        fn()
        sync()
        if timing.warmup_done == 0:
            timing.first_call_s = clock() - t0
        timing.warmup_done += 1
        # The first call may include one-time work (compilation); it does not count against the budget.
        spent = clock() - start - timing.first_call_s
        if spent > warmup_budget or (timing.warmup_done >= spec.warmup and spent >= spec.warmup_s):
            break
    gc.collect()  # before the clock starts: with many models loaded a collection takes ~0.1-0.5 s
    gc_was_enabled = gc.isenabled()
    gc.disable()
    load = LoadMeter()
    timed_start = clock()
    remaining = spec.budget_s - (timed_start - start - (timing.first_call_s or 0.0))
    try:
        while len(timing.samples) < spec.max_repeats:
            t0 = clock()
            fn()
            sync()
            timing.samples.append(clock() - t0)
            n, elapsed = len(timing.samples), clock() - timed_start
            if n >= spec.min_repeats and elapsed > remaining:
                break  # the budget is spent
            if n >= spec.repeats and elapsed >= spec.min_time_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    timing.other_load = load.other_cores()
    return timing
