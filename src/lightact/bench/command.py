"""``lightact bench``: argument parsing and the run, separate from the typer app.

Options take several values after one flag (``--batch 1 16 --backend eager compile``), which click
options cannot, so the command hands its raw arguments to argparse.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from lightact.bench.protocol import BenchSpec

DESCRIPTION = """Benchmark models: parameters, FLOPs and multiply-adds, batch-1 latency (median, p90),
throughput, peak memory, per backend. Writes bench.json, bench.csv, bench.md and PNG plots to --out.

MODEL is a lightact model or checkpoint (star_64, stgcn, composite_mnv3s, runs/x), a torchvision
video model (tv/r3d_18, tv/mvit_v2_s, ...) or a timm model (timm/vit_tiny_patch16_224); random
weights, nothing downloaded. @default = a set of 11 models covering the efficiency classes."""

EXAMPLE = """example:
  lightact bench star_64 stgcn tv/r3d_18 timm/deit_tiny_patch16_224 --backend eager compile onnxruntime
  lightact bench tv/r3d_18 --batch 1 16 --shape tv/r3d_18=3x8x112x112 --threads 2 --out bench_r3d"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lightact bench",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--batch", nargs="+", type=int, default=[1], help="batch sizes (default 1)")
    p.add_argument(
        "--backend",
        nargs="+",
        default=["eager"],
        choices=["eager", "compile", "onnxruntime", "onnxruntime-int8"],
        help="backends (default eager); onnxruntime-int8: the ONNX export, dynamically quantized to int8",
    )
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", default="bench_out", help="report directory (default bench_out)")
    p.add_argument("--warmup", type=int, default=BenchSpec.warmup, help="warm-up calls (default 3)")
    p.add_argument("--warmup-time", type=float, default=BenchSpec.warmup_s, help="warm-up seconds at least")
    p.add_argument(
        "--repeats",
        type=int,
        default=BenchSpec.repeats,
        help="timed calls at least, budget allowing (default 10)",
    )
    p.add_argument("--min-time", type=float, default=BenchSpec.min_time_s, help="timed seconds at least (3)")
    p.add_argument("--max-repeats", type=int, default=BenchSpec.max_repeats, help="timed calls at most (100)")
    p.add_argument(
        "--min-repeats", type=int, default=BenchSpec.min_repeats, help="timed calls whatever the budget"
    )
    p.add_argument(
        "--budget", type=float, default=BenchSpec.budget_s, help="seconds per measurement (default 15)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=BenchSpec.rounds,
        help="split each measurement's timed calls into rounds spread over the whole run (default 5)",
    )
    p.add_argument(
        "--busy-retries",
        type=int,
        default=BenchSpec.busy_retries,
        help="re-measure when other processes used > 0.25 cores meanwhile (default 1)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=BenchSpec.wait_quiet_s,
        help="before re-measuring, wait up to this many seconds for other processes to go quiet (0)",
    )
    p.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="MODEL=DIMS",
        help="one sample's input shape, e.g. tv/r3d_18=3x8x112x112 or star_64=300x25x9 (repeatable)",
    )
    p.add_argument("--train-step", action="store_true", help="also time a training step (eager)")
    p.add_argument("--accuracy", default=None, help="CSV/JSON of model accuracies: adds pareto.png")
    p.add_argument("--no-calibrate", action="store_true", help="skip the matmul peak calibration")
    return p


def run(argv: Sequence[str], echo: Callable[[str], None] = print) -> int:
    args = parser().parse_args(list(argv))  # -h and usage errors exit here, before torch loads
    from lightact.bench.models import check_name, expand, parse_shape
    from lightact.bench.report import write_reports
    from lightact.bench.runner import run_bench

    try:
        spec = BenchSpec(
            warmup=args.warmup,
            repeats=args.repeats,
            min_repeats=min(args.min_repeats, args.repeats),
            budget_s=args.budget,
            busy_retries=args.busy_retries,
            warmup_s=args.warmup_time,
            min_time_s=args.min_time,
            max_repeats=max(args.max_repeats, args.repeats),
            wait_quiet_s=args.wait_quiet,
            rounds=args.rounds,
        )
        shapes = {}
        for item in args.shape:
            name, sep, dims = item.partition("=")
            if not sep:
                raise ValueError(f"--shape {item!r}: write MODEL=DIMS")
            shapes[name] = parse_shape(dims)
        for name in expand(args.models):  # every name, before the first measurement
            check_name(name)
    except (ValueError, KeyError) as err:
        err = err.args[0] if isinstance(err, KeyError) and err.args else err
        echo(f"error: {err}")
        return 2
    start = time.perf_counter()
    result = run_bench(
        expand(args.models),
        backends=args.backend,
        batches=args.batch,
        spec=spec,
        threads=args.threads,
        device=args.device,
        out_dir=args.out,
        shapes=shapes,
        train_step=args.train_step,
        calibrate=not args.no_calibrate,
        log=echo,
    )
    written = write_reports(result, args.out, accuracies=args.accuracy)
    failed = [r for r in result["rows"] if r.get("status") != "ok"]
    echo(f"{len(result['rows'])} rows ({len(failed)} failed) in {time.perf_counter() - start:.0f} s")
    for kind, path in written.items():
        echo(f"  {kind}: {path}")
    return 1 if failed and len(failed) == len(result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
