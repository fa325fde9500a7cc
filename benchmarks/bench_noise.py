"""Is `lightact bench` repeatable? Run the same bench twice, back to back, and compare the medians.

Each run is a fresh `lightact bench` process writing to OUT/run1 and OUT/run2; the script then prints,
per (model, backend, batch), both medians, their ratio, both spreads and the CPU other processes used
during each measurement, and the share of rows whose medians agree within the tolerance (10 %).

    python benchmarks/bench_noise.py --out /tmp/noise -- @default --backend eager compile onnxruntime

Everything after ``--`` goes to `lightact bench` unchanged (``--out`` is set by this script).
Exit status 0 when every row agrees within the tolerance, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

QUIET = 0.25  # cores of other load below which a measurement counts as undisturbed


def run_once(bench_args: list[str], out: Path) -> float:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "lightact.bench.command", *bench_args, "--out", str(out)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def load_rows(out: Path) -> dict[tuple, dict]:
    data = json.loads((out / "bench.json").read_text())
    return {(r["model"], r["backend"], r["batch"]): r for r in data["rows"] if r.get("status") == "ok"}


def compare(first: dict[tuple, dict], second: dict[tuple, dict], tolerance: float) -> tuple[list[dict], int]:
    rows, agree = [], 0
    for key in first:
        if key not in second:
            continue
        a, b = first[key], second[key]
        ratio = b["latency_ms_median"] / a["latency_ms_median"]
        ok = abs(ratio - 1) <= tolerance
        agree += ok
        rows.append(
            {
                "model": key[0],
                "backend": key[1],
                "batch": key[2],
                "median_ms_run1": a["latency_ms_median"],
                "median_ms_run2": b["latency_ms_median"],
                "ratio": ratio,
                "spread_pct_run1": a.get("spread_pct"),
                "spread_pct_run2": b.get("spread_pct"),
                "round_drift_pct_run1": a.get("round_drift_pct"),
                "round_drift_pct_run2": b.get("round_drift_pct"),
                "other_load_run1": a.get("other_load"),
                "other_load_run2": b.get("other_load"),
                "within_tolerance": ok,
            }
        )
    return rows, agree


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench_noise"))
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for lightact bench, after --")
    args = parser.parse_args()
    bench_args = [a for a in args.bench_args if a != "--"] or ["@default", "--backend", "eager"]

    walls = [run_once(bench_args, args.out / f"run{i}") for i in (1, 2)]
    rows, agree = compare(load_rows(args.out / "run1"), load_rows(args.out / "run2"), args.tolerance)

    print(f"\nwall time: run 1 {walls[0]:.0f} s, run 2 {walls[1]:.0f} s")
    header = f"{'model':30s} {'backend':12s} {'batch':>5s} {'run1 ms':>9s} {'run2 ms':>9s} {'ratio':>6s}"
    print(header + f" {'spread1':>8s} {'spread2':>8s} {'load1':>6s} {'load2':>6s}")
    for r in rows:
        flag = "" if r["within_tolerance"] else "  <-- outside"
        print(
            f"{r['model']:30s} {r['backend']:12s} {r['batch']:5d} {r['median_ms_run1']:9.1f} "
            f"{r['median_ms_run2']:9.1f} {r['ratio']:6.3f} {r['spread_pct_run1'] or 0:7.1f}% "
            f"{r['spread_pct_run2'] or 0:7.1f}% {r['other_load_run1'] or 0:6.2f} "
            f"{r['other_load_run2'] or 0:6.2f}{flag}"
        )
    if rows:
        worst = max(abs(r["ratio"] - 1) for r in rows)
        print(
            f"\n{agree}/{len(rows)} medians agree within {args.tolerance:.0%}; "
            f"worst deviation {worst:.1%}; load = CPU cores used by other processes while timing"
        )
        quiet = [r for r in rows if max(r["other_load_run1"] or 0, r["other_load_run2"] or 0) <= QUIET]
        if quiet:
            ok = sum(r["within_tolerance"] for r in quiet)
            worst_quiet = max(abs(r["ratio"] - 1) for r in quiet)
            print(
                f"rows where both runs saw <= {QUIET} cores of other load: {ok}/{len(quiet)} agree within "
                f"{args.tolerance:.0%}, worst deviation {worst_quiet:.1%}"
            )
    (args.out / "noise.json").write_text(json.dumps({"walls_s": walls, "rows": rows}, indent=2))
    return 0 if rows and agree == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
