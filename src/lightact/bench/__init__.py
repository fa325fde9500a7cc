"""Efficiency benchmark: parameters, FLOPs, latency, throughput and memory per model and backend."""

from lightact.bench.protocol import BenchSpec, Stats, Timing, measure

__all__ = ["BenchSpec", "Stats", "Timing", "measure"]
