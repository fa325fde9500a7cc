"""Run the benchmark: every model x backend x batch size, one report row each.

Backends:

* ``eager``: the module in eval mode under ``torch.no_grad``;
* ``compile``: ``torch.compile`` (inductor; on CPU it needs a C++ compiler). The first call compiles
  and is reported separately (``setup_s``), never as a latency sample;
* ``onnxruntime``: the model exported by :mod:`lightact.export.onnx` (verified against PyTorch
  first) and run by an ONNX Runtime session with the same thread count;
* ``onnxruntime-int8``: that export after ONNX Runtime's dynamic int8 quantization
  (:mod:`lightact.export.quantize`), its largest difference from PyTorch in the row's note.

Every backend of every model is built first (compiled, exported), then the timed calls run in
rounds over all of them (:mod:`lightact.bench.protocol`), then memory and the optional training step
are measured: all the models stay in memory together for that.

A backend failing on a model (a compiler error, an export that does not reproduce PyTorch) becomes a
row with ``status = failed`` and the reason; the rest of the benchmark goes on.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lightact.bench.env import calibrate_matmul, device_sync, environment
from lightact.bench.flops import FlopCount, count_model_flops, count_parameters
from lightact.bench.memory import PeakMemory, peak_memory
from lightact.bench.models import BenchModel, resolve
from lightact.bench.protocol import BUSY_CORES, BenchSpec, Timing, measure, wait_until_quiet

BACKENDS = ("eager", "compile", "onnxruntime", "onnxruntime-int8")


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


@dataclass
class _OnnxExport:
    """One model's verified ONNX file(s), shared by both ONNX Runtime backends of a run: the int8
    backend quantizes the file the float one runs instead of exporting the model again (the export
    is most of either backend's setup)."""

    paths: dict[int, Path]  # batch size -> file (one file for all of them with a dynamic batch axis)
    note: str
    seconds: float


def _export_for_onnxruntime(bench: BenchModel, batches: Sequence[int], onnx_dir: Path) -> _OnnxExport:
    """Export (verified against PyTorch). A model whose graph cannot take a dynamic batch axis is
    exported once per batch size with static shapes instead, and the rows say so."""
    from lightact.export.onnx import export_onnx
    from lightact.models.spec import NotExportable

    if bench.onnx_module is None:
        raise RuntimeError(f"no ONNX export: {bench.not_onnx or 'the model declares none'}")
    module = bench.onnx_module.cpu()
    names = bench.onnx_names
    verify = []
    if bench.onnx_alternate is not None:
        verify.append(bench.onnx_alternate())
    elif max(batches) > 1:
        verify.append(bench.onnx_calls(bench.inputs(2))[0])
    stem = bench.name.replace("/", "__")
    start = time.perf_counter()
    try:
        path = onnx_dir / f"{stem}.onnx"
        example = bench.onnx_calls(bench.inputs(min(batches)))[0]
        export_onnx(
            module, example, path, input_axes=bench.onnx_axes, input_names=names, verify_inputs=verify
        )
        return _OnnxExport(dict.fromkeys(batches, path), "", time.perf_counter() - start)
    except NotExportable as err:
        if bench.onnx_axes != {names[0]: {0: "batch"}}:
            raise
        note = f"static-shape export per batch size (dynamic batch failed: {err})"
    paths = {}
    for b in batches:
        x = bench.onnx_calls(bench.inputs(b))[0]
        paths[b] = onnx_dir / f"{stem}_b{b}.onnx"
        export_onnx(
            module, x, paths[b], input_names=names, verify_inputs=[tuple(torch.randn_like(t) for t in x)]
        )
    return _OnnxExport(paths, note, time.perf_counter() - start)


def _onnxruntime(
    bench: BenchModel,
    device: torch.device,
    batches: Sequence[int],
    threads: int,
    exported: _OnnxExport,
    quantize: bool = False,
) -> _Backend:
    """An ONNX Runtime session on the export; with ``quantize``, on the int8 model ONNX Runtime's
    dynamic quantization makes of it (its largest difference from PyTorch is in the row's note).
    The setup time counts the export, as if this backend had been the only one."""
    from lightact.export.quantize import int8_path, quantize_int8
    from lightact.export.session import ort_session

    start = time.perf_counter()
    opened = {}
    for path in dict.fromkeys(exported.paths.values()):
        model_path = quantize_int8(path, int8_path(path)) if quantize else path
        opened[path] = ort_session(model_path, threads=threads, device=device.type)
    sessions = {b: opened[exported.paths[b]] for b in batches}
    setup = exported.seconds + time.perf_counter() - start
    names = bench.onnx_names
    calls = {b: bench.onnx_calls(bench.inputs(b)) for b in batches}
    feeds = {
        b: [dict(zip(names, (t.numpy() for t in call), strict=True)) for call in calls[b]] for b in batches
    }
    note = exported.note
    if quantize:
        module = bench.onnx_module.cpu()
        with torch.no_grad():
            expected = torch.cat([module(*call) for call in calls[max(batches)]]).numpy()
        got = np.concatenate([sessions[max(batches)].run(None, f)[0] for f in feeds[max(batches)]])
        note = (
            note + "; " if note else ""
        ) + f"int8 dynamic quantization, max |int8 - torch| {abs(got - expected).max():.2g}"

    def call(batch: int):
        batch_feeds, session = feeds[batch], sessions[batch]

        def run():
            return [session.run(None, f) for f in batch_feeds]

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

        timing = measure(step, spec, device_sync(device))
        stats = timing.stats
        return {"train_step_ms": stats.median * 1e3, "train_step_spread_pct": stats.spread * 100}
    finally:
        module.eval()


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


@dataclass
class _Job:
    """One (model, backend, batch) being measured: its forward, its report row, its pooled timing."""

    bench: BenchModel
    backend: str
    batch: int
    runner: _Backend
    row: dict
    fn: Callable[[], object]
    flops: FlopCount | None
    memory: PeakMemory | None = None
    timing: Timing = field(default_factory=lambda: Timing(warmup_done=0))

    @property
    def failed(self) -> bool:
        return self.row.get("status") == "failed"


def _prepare_model(
    bench: BenchModel,
    backends: Sequence[str],
    batches: Sequence[int],
    device: torch.device,
    threads: int,
    onnx_dir: Path,
    log: Callable[[str], None],
) -> tuple[list[dict], list[_Job]]:
    """Build every backend of one model (compile, export). Returns its rows in backend and batch
    order (a failed build's rows final, the others filled in by :func:`_finish`) and its jobs."""
    params = count_parameters(bench.module)
    try:
        flops = count_model_flops(bench.module, bench.inputs(1))
    except Exception as err:  # a counter failure must not hide the timings
        log(f"  FLOPs not counted: {_first_line(err)}")
        flops = None
    rows: list[dict] = []
    jobs: list[_Job] = []
    exported: _OnnxExport | Exception | None = None  # made by the first ONNX Runtime backend
    for backend in backends:
        start = time.perf_counter()
        base = {**_base_row(bench, params, flops, device, threads), "backend": backend}
        try:
            if backend == "eager":
                runner = _eager(bench, device, batches)
            elif backend == "compile":
                runner = _compiled(bench, device, batches)
            else:
                if exported is None:
                    try:
                        exported = _export_for_onnxruntime(bench, batches, onnx_dir)
                    except Exception as err:  # the other ONNX Runtime backend fails the same way
                        exported = err
                if isinstance(exported, Exception):
                    raise exported
                quantize = backend == "onnxruntime-int8"
                runner = _onnxruntime(bench, device, batches, threads, exported, quantize)
        except Exception as err:
            reason = _first_line(err)
            log(f"  {backend} failed: {reason}")
            failed = {"status": "failed", "error": reason, "setup_s": time.perf_counter() - start}
            rows += [{**base, "batch": b, **failed} for b in batches]
            continue
        log(f"  {backend} ready ({runner.setup_s:.1f} s setup)")
        for batch in batches:
            row = {**base, "batch": batch, "setup_s": runner.setup_s}
            fn = runner.call(batch)
            job = _Job(bench, backend, batch, runner, row, fn, flops)
            try:  # an arena allocator's growth shows on a fresh session's first call only
                job.memory = peak_memory(fn, device) if runner.memory_first else None
            except Exception as err:
                _fail(job, err, log)
            rows.append(row)
            jobs.append(job)
    return rows, jobs


def _fail(job: _Job, err: BaseException, log: Callable[[str], None]) -> None:
    job.row.update(status="failed", error=_first_line(err))
    log(f"  {job.bench.name} / {job.backend} / batch {job.batch} failed: {job.row['error']}")
    log(traceback.format_exc(limit=3))


def _measure_round(job: _Job, spec: BenchSpec, device: torch.device, log: Callable[[str], None]) -> Timing:
    """One round of one job; redone (keeping the quieter) when other processes took CPU meanwhile."""
    timing = measure(job.fn, spec, device_sync(device))
    for _ in range(spec.busy_retries):
        if (timing.other_load or 0.0) <= BUSY_CORES:
            break
        log(f"  {job.bench.name} / {job.backend}: other processes used {timing.other_load:.2f} cores, again")
        job.row["remeasured"] = job.row.get("remeasured", 0) + 1
        if spec.wait_quiet_s > 0:
            job.row["waited_s"] = job.row.get("waited_s", 0.0) + wait_until_quiet(spec.wait_quiet_s)
        again = measure(job.fn, spec, device_sync(device))
        if (again.other_load or 0.0) < timing.other_load:
            timing = again
    return timing


def _finish(
    job: _Job,
    spec: BenchSpec,
    device: torch.device,
    peak_flops: float | None,
    train_step: bool,
    log: Callable[[str], None],
) -> None:
    """Memory, statistics and the optional training step into the job's row."""
    row, timing = job.row, job.timing
    memory = job.memory if job.memory is not None else peak_memory(job.fn, device)
    onnx = job.backend.startswith("onnxruntime")
    if onnx and device.type == "cuda":
        memory = PeakMemory(None, "not measured: onnxruntime CUDA memory is outside torch")
    elif job.runner.memory_first:
        method = "first call of a fresh onnxruntime session, its arena grows in chunks; "
        memory = PeakMemory(memory.bytes, method + memory.method)
    stats = timing.stats
    drift = timing.drift
    row.update(
        status="ok",
        error="",
        latency_ms_median=stats.median * 1e3,
        latency_ms_p90=stats.p90 * 1e3,
        latency_ms_iqr=stats.iqr * 1e3,
        latency_ms_min=stats.min * 1e3,
        spread_pct=stats.spread * 100,
        rounds=len(timing.round_medians),
        round_drift_pct=None if drift is None else drift * 100,
        warmup_runs=timing.warmup_done,
        timed_runs=stats.n,
        first_call_s=timing.first_call_s,
        other_load=timing.other_load,
        throughput_per_s=job.batch / stats.median,
        peak_mem_mib=memory.mib,
        mem_method=memory.method,
    )
    if job.flops is not None:
        achieved = job.flops.flops * job.batch / stats.median
        row["achieved_gflops_per_s"] = achieved / 1e9
        row["peak_fraction"] = achieved / peak_flops if peak_flops else None
    if onnx and job.bench.note:
        row["note"] = job.bench.note
    if job.runner.note:
        row["note"] = job.runner.note
    if train_step and job.backend == "eager":
        try:
            row.update(_train_step(job.bench, device, job.batch, spec))
        except Exception as err:
            row["train_step_error"] = _first_line(err)
    drift_text = "" if drift is None else f", drift between rounds {drift:.1%}"
    log(
        f"{job.bench.name} / {job.backend} / batch {job.batch}: {stats.median * 1e3:.1f} ms median, "
        f"p90 {stats.p90 * 1e3:.1f}, spread {stats.spread:.1%}{drift_text} "
        f"({timing.warmup_done} warm-up + {stats.n} timed)"
    )


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
    with contextlib.ExitStack() as stack:
        if "compile" in backends:
            from torch import _dynamo

            # Every compiled model stays alive for the rounds; models of one class share a forward
            # whose compiled entries dynamo caps at 8 by default, then silently runs eager.
            limit = max(_dynamo.config.cache_size_limit, 2 * len(models) * len(batches))
            stack.enter_context(_dynamo.config.patch(cache_size_limit=limit))
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
    rows: list[dict] = []  # in the order models, backends and batches were asked for
    jobs: list[_Job] = []
    for name in models:
        log(f"{name}")
        try:
            bench = resolve(name, (shapes or {}).get(name))
        except Exception as err:
            reason = f"could not build: {_first_line(err)}"
            rows += [
                {"model": name, "backend": backend, "batch": batch, "status": "failed", "error": reason}
                for backend in backends
                for batch in batches
            ]
            log(f"  {reason}")
            continue
        model_rows, model_jobs = _prepare_model(bench, backends, batches, dev, threads, onnx_dir, log)
        rows += model_rows
        jobs += model_jobs
    for index in range(spec.rounds):
        round_spec = spec.for_round(index)
        log(f"round {index + 1}/{spec.rounds}")
        for job in jobs:
            if job.failed:
                continue
            try:
                job.timing.add_round(_measure_round(job, round_spec, dev, log))
            except Exception as err:
                _fail(job, err, log)
    for job in jobs:
        if not job.failed:
            try:
                _finish(job, spec, dev, calibration.peak_flops if calibration else None, train_step, log)
            except Exception as err:
                _fail(job, err, log)
    return {
        "environment": env,
        "calibration": calibration.as_dict() if calibration else None,
        "protocol": {
            **asdict(spec),
            "batches": list(batches),
            "backends": list(backends),
            "latency": "median and p90 of one batch's timed calls (pooled over the rounds), after warm-up",
            "round_drift": "range of the round medians / pooled median: what a second run may see",
            "spread": "interquartile range / median of the timed calls",
            "flops": "torch.utils.flop_counter at batch 1 (a multiply-add = 2 FLOPs); gmacs = gflops / 2",
            "memory": "see mem_method per row",
        },
        "rows": rows,
        "wall_s": time.perf_counter() - started,
    }
