"""Run the benchmark: every model x backend x batch size, one report row each.

Backends:

* ``eager``: the module in eval mode under ``torch.no_grad``;
* ``compile``: ``torch.compile`` (inductor; on CPU it needs a C++ compiler). The first call compiles
  and is reported separately (``setup_s``), never as a latency sample;
* ``onnxruntime``: the model exported by :mod:`lightact.export.onnx` (verified against PyTorch
  first) and run by an ONNX Runtime session with the same thread count.

A backend failing on a model (a compiler error, an export that does not reproduce PyTorch) becomes a
row with ``status = failed`` and the reason; the rest of the benchmark goes on.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from lightact.bench.env import calibrate_matmul, environment
from lightact.bench.flops import count_model_flops, count_parameters
from lightact.bench.memory import PeakMemory, peak_memory
from lightact.bench.models import BenchModel, resolve
from lightact.bench.protocol import BUSY_CORES, BenchSpec, measure, wait_until_quiet

BACKENDS = ("eager", "compile", "onnxruntime")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}".rstrip(": ")


def _to(inputs: tuple, device: torch.device) -> tuple:
    return tuple(t.to(device) for t in inputs)


class _Backend:
    """A callable forward for one model on one backend, plus how to measure its memory."""

    def __init__(
        self, call: Callable[[int], Callable[[], object]], setup_s: float, memory_first: bool, note: str = ""
    ) -> None:
        self.call = call  # batch -> zero-argument function running one batch
        self.setup_s = setup_s
        self.memory_first = memory_first  # measure memory on the first call (arena allocators)
        self.note = note


def _eager(bench: BenchModel, device: torch.device, batches: Sequence[int]) -> _Backend:
    module = bench.module.to(device)
    inputs = {b: _to(bench.inputs(b), device) for b in batches}

    def call(batch: int):
        x = inputs[batch]

        def run():
            with torch.no_grad():
                return module(*x)

        return run

    return _Backend(call, 0.0, memory_first=False)


def _compiled(bench: BenchModel, device: torch.device, batches: Sequence[int]) -> _Backend:
    import torch._dynamo

    torch._dynamo.reset()
    module = bench.module.to(device)
    compiled = torch.compile(module)
    inputs = {b: _to(bench.inputs(b), device) for b in batches}
    start = time.perf_counter()
    with torch.no_grad():
        for b in batches:  # compile every shape now, so that no sample includes compilation
            compiled(*inputs[b])
    setup = time.perf_counter() - start

    def call(batch: int):
        x = inputs[batch]

        def run():
            with torch.no_grad():
                return compiled(*x)

        return run

    return _Backend(call, setup, memory_first=False)


def _onnxruntime(
    bench: BenchModel, device: torch.device, batches: Sequence[int], threads: int, onnx_dir: Path
) -> _Backend:
    """Export (verified against PyTorch) and open a session. A model whose graph cannot take a dynamic
    batch axis is exported once per batch size with static shapes instead, and the row says so."""
    from lightact.export.onnx import export_onnx, ort_session
    from lightact.export.targets import NotExportable

    if bench.onnx_module is None:
        raise RuntimeError(f"no ONNX export: {bench.not_onnx or 'the model declares none'}")
    module = bench.onnx_module.cpu()
    inputs = {b: bench.inputs(b) for b in batches}
    calls = {b: [t.numpy() for t in bench.onnx_calls(inputs[b])] for b in batches}
    example = bench.onnx_calls(inputs[min(batches)])[0]
    verify = []
    if bench.onnx_alternate is not None:
        verify.append(bench.onnx_alternate())
    elif max(batches) > 1:
        verify.append(bench.onnx_calls(bench.inputs(2))[0])
    stem = bench.name.replace("/", "__")
    start = time.perf_counter()
    note = ""
    try:
        export_onnx(
            module, example, onnx_dir / f"{stem}.onnx", dynamic_axes=bench.onnx_axes, verify_inputs=verify
        )
        session = ort_session(onnx_dir / f"{stem}.onnx", threads=threads, device=device.type)
        sessions = dict.fromkeys(batches, session)
    except NotExportable as err:
        if bench.onnx_axes != {0: "batch"}:
            raise
        note = f"static-shape export per batch size (dynamic batch failed: {err})"
        sessions = {}
        for b in batches:
            x = bench.onnx_calls(inputs[b])[0]
            path = onnx_dir / f"{stem}_b{b}.onnx"
            export_onnx(module, x, path, verify_inputs=[torch.randn_like(x)])
            sessions[b] = ort_session(path, threads=threads, device=device.type)
    setup = time.perf_counter() - start

    def call(batch: int):
        feeds, session = calls[batch], sessions[batch]

        def run():
            return [session.run(None, {"x": x}) for x in feeds]

        return run

    return _Backend(call, setup, memory_first=True, note=note)


def _train_step(bench: BenchModel, device: torch.device, batch: int, spec: BenchSpec) -> dict:
    """Forward, cross-entropy on random labels, backward and an SGD step, timed like inference."""
    module = bench.module.to(device).train()
    inputs = _to(bench.inputs(batch), device)
    optimiser = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=1e-6)
    try:
        with torch.no_grad():
            classes = module(*inputs).shape[-1]
        labels = torch.randint(0, classes, (batch,), device=device)

        def step():
            optimiser.zero_grad(set_to_none=True)
            loss = F.cross_entropy(module(*inputs), labels)
            loss.backward()
            optimiser.step()

        timing = measure(step, spec, _sync(device))
        stats = timing.stats
        return {"train_step_ms": stats.median * 1e3, "train_step_spread_pct": stats.spread * 100}
    finally:
        module.eval()


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _base_row(bench: BenchModel, params: int, flops, device: torch.device, threads: int) -> dict:
    return {
        "model": bench.name,
        "source": bench.source,
        "class": bench.model_class,
        "modality": bench.modality,
        "input": bench.input_desc,
        "params_m": params / 1e6,
        "gflops": flops.gflops if flops else None,
        "gmacs": flops.gmacs if flops else None,
        "device": str(device),
        "threads": threads,
    }


def bench_model(
    bench: BenchModel,
    backends: Sequence[str],
    batches: Sequence[int],
    spec: BenchSpec,
    device: torch.device,
    threads: int,
    onnx_dir: Path,
    peak_flops: float | None = None,
    train_step: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    params = count_parameters(bench.module)
    try:
        flops = count_model_flops(bench.module, bench.inputs(1))
    except Exception as err:  # a counter failure must not hide the timings
        log(f"  FLOPs not counted: {_first_line(err)}")
        flops = None
    rows = []
    for backend in backends:
        log(f"  {backend}")
        start = time.perf_counter()
        try:
            if backend == "eager":
                runner = _eager(bench, device, batches)
            elif backend == "compile":
                runner = _compiled(bench, device, batches)
            elif backend == "onnxruntime":
                runner = _onnxruntime(bench, device, batches, threads, onnx_dir)
            else:
                raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        except Exception as err:
            reason = _first_line(err)
            log(f"    failed: {reason}")
            for batch in batches:
                rows.append(
                    {**_base_row(bench, params, flops, device, threads), "backend": backend, "batch": batch,
                     "status": "failed", "error": reason, "setup_s": time.perf_counter() - start}
                )  # fmt: skip
            continue
        for batch in batches:
            row = {**_base_row(bench, params, flops, device, threads), "backend": backend, "batch": batch}
            row["setup_s"] = runner.setup_s
            try:
                fn = runner.call(batch)
                memory = peak_memory(fn, device) if runner.memory_first else None
                timing = measure(fn, spec, _sync(device))
                for _ in range(spec.busy_retries):
                    if (timing.other_load or 0.0) <= BUSY_CORES:
                        break
                    # Another process took CPU meanwhile: measure again, keep the quieter measurement.
                    log(f"    other processes used {timing.other_load:.2f} cores: measuring again")
                    row["remeasured"] = row.get("remeasured", 0) + 1
                    if spec.wait_quiet_s > 0:
                        row["waited_s"] = row.get("waited_s", 0.0) + wait_until_quiet(spec.wait_quiet_s)
                    again = measure(fn, spec, _sync(device))
                    if (again.other_load or 0.0) < timing.other_load:
                        timing = again
                if memory is None:
                    memory = peak_memory(fn, device)
                if backend == "onnxruntime" and device.type == "cuda":
                    memory = PeakMemory(None, "not measured: onnxruntime CUDA memory is outside torch")
                elif runner.memory_first:
                    method = "first call of a fresh onnxruntime session, its arena grows in chunks; "
                    memory = PeakMemory(memory.bytes, method + memory.method)
                stats = timing.stats
                row.update(
                    status="ok",
                    error="",
                    latency_ms_median=stats.median * 1e3,
                    latency_ms_p90=stats.p90 * 1e3,
                    latency_ms_iqr=stats.iqr * 1e3,
                    latency_ms_min=stats.min * 1e3,
                    spread_pct=stats.spread * 100,
                    warmup_runs=timing.warmup_done,
                    timed_runs=stats.n,
                    first_call_s=timing.first_call_s,
                    other_load=timing.other_load,
                    throughput_per_s=batch / stats.median,
                    peak_mem_mib=memory.mib,
                    mem_method=memory.method,
                )
                if flops is not None:
                    achieved = flops.flops * batch / stats.median
                    row["achieved_gflops_per_s"] = achieved / 1e9
                    row["peak_fraction"] = achieved / peak_flops if peak_flops else None
                if backend == "onnxruntime" and bench.onnx_axes.get(0) != "batch":
                    row["note"] = bench.note
                if runner.note:
                    row["note"] = runner.note
                if train_step and backend == "eager":
                    try:
                        row.update(_train_step(bench, device, batch, spec))
                    except Exception as err:
                        row["train_step_error"] = _first_line(err)
                log(
                    f"    batch {batch}: {stats.median * 1e3:.1f} ms median, p90 {stats.p90 * 1e3:.1f}, "
                    f"spread {stats.spread:.1%} ({timing.warmup_done} warm-up + {stats.n} timed)"
                )
            except Exception as err:
                row.update(status="failed", error=_first_line(err))
                log(f"    batch {batch} failed: {row['error']}")
                log(traceback.format_exc(limit=3))
            rows.append(row)
        del runner
    return rows


def run_bench(
    models: Sequence[str],
    backends: Sequence[str] = ("eager",),
    batches: Sequence[int] = (1,),
    spec: BenchSpec | None = None,
    threads: int | None = None,
    device: str = "cpu",
    out_dir: str | Path = "bench_out",
    shapes: dict[str, tuple[int, ...]] | None = None,
    train_step: bool = False,
    calibrate: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    """Benchmark ``models`` and return ``{"environment", "calibration", "protocol", "rows", ...}``."""
    spec = spec or BenchSpec()
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    if any(b < 1 for b in batches):
        raise ValueError("batch sizes must be positive")
    batches = sorted(set(batches))
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but torch sees no CUDA device")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(models, backends, batches, spec, dev, out_dir, shapes, train_step, calibrate, log)
    finally:
        torch.set_num_threads(previous_threads)


def _run(
    models: Sequence[str],
    backends: Sequence[str],
    batches: list[int],
    spec: BenchSpec,
    dev: torch.device,
    out_dir: str | Path,
    shapes: dict[str, tuple[int, ...]] | None,
    train_step: bool,
    calibrate: bool,
    log: Callable[[str], None],
) -> dict:
    threads = torch.get_num_threads()
    out_dir = Path(out_dir)
    onnx_dir = out_dir / "onnx"
    started = time.perf_counter()
    env = environment(dev)
    calibration = calibrate_matmul(dev) if calibrate else None
    if calibration:
        log(f"calibration: dense fp32 matmul {calibration.peak_flops / 1e9:.1f} GFLOP/s peak")
    rows: list[dict] = []
    for name in models:
        log(f"{name}")
        model_start = time.perf_counter()
        try:
            bench = resolve(name, (shapes or {}).get(name))
        except Exception as err:
            reason = f"could not build: {_first_line(err)}"
            for backend in backends:
                for batch in batches:
                    rows.append({"model": name, "backend": backend, "batch": batch, "status": "failed",
                                 "error": reason})  # fmt: skip
            log(f"  could not build: {_first_line(err)}")
            continue
        rows.extend(
            bench_model(
                bench, backends, batches, spec, dev, threads, onnx_dir,
                calibration.peak_flops if calibration else None, train_step, log,
            )
        )  # fmt: skip
        log(f"  ({time.perf_counter() - model_start:.0f} s)")
        del bench
    return {
        "environment": env,
        "calibration": calibration.as_dict() if calibration else None,
        "protocol": {
            **asdict(spec),
            "batches": list(batches),
            "backends": list(backends),
            "latency": "median and p90 of the timed calls of one batch, after warm-up",
            "spread": "interquartile range / median of the timed calls",
            "flops": "torch.utils.flop_counter at batch 1 (a multiply-add = 2 FLOPs); gmacs = gflops / 2",
            "memory": "see mem_method per row",
        },
        "rows": rows,
        "wall_s": time.perf_counter() - started,
    }
