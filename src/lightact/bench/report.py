"""Benchmark reports: CSV and JSON rows with the environment, a markdown table, PNG plots.

* ``bench.json``: ``{environment, calibration, protocol, rows, wall_s}``: everything;
* ``bench.csv``: one flat row per (model, backend, batch), the key environment fields repeated in
  columns so that a row keeps its context when CSVs from several machines are concatenated;
* ``bench.md``: environment, protocol, the table, failures with their reasons;
* ``latency_by_backend.png``: batch-1 median latency per model and backend (whiskers: p90), bars
  on a linear axis, or dots on a labelled log axis when latencies span more than 30x;
* ``pareto.png``: accuracy against latency with the Pareto front, when accuracies are given.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

COLUMNS = [
    "model", "class", "source", "modality", "input", "backend", "batch", "device", "threads",
    "status", "params_m", "gflops", "gmacs", "latency_ms_median", "latency_ms_p90", "latency_ms_iqr",
    "latency_ms_min", "spread_pct", "rounds", "round_drift_pct", "warmup_runs", "timed_runs",
    "first_call_s", "setup_s", "other_load", "remeasured", "waited_s", "throughput_per_s",
    "achieved_gflops_per_s", "peak_fraction", "peak_mem_mib", "mem_method",
    "train_step_ms", "train_step_spread_pct", "train_step_error", "note", "error",
]  # fmt: skip
ENV_COLUMNS = ["cpu", "torch", "onnxruntime", "cores_available"]


def _clean(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def write_json(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{k: _clean(v) for k, v in row.items()} for row in result["rows"]]
    path.write_text(json.dumps({**result, "rows": rows}, indent=2, default=str))
    return path


def write_csv(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = result.get("environment") or {}
    extra = sorted({k for row in result["rows"] for k in row} - set(COLUMNS))
    columns = COLUMNS + extra + [f"env_{k}" for k in ENV_COLUMNS] + ["env_peak_gflops"]
    calibration = result.get("calibration") or {}
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in result["rows"]:
            out = {k: _clean(row.get(k)) for k in COLUMNS + extra}
            out.update({f"env_{k}": env.get(k) for k in ENV_COLUMNS})
            out["env_peak_gflops"] = calibration.get("peak_gflops")
            writer.writerow(out)
    return path


def _fmt(value, digits: int = 1, scale: float = 1.0, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value * scale:.{digits}f}{suffix}"


def markdown(result: dict) -> str:
    env = result.get("environment") or {}
    cal = result.get("calibration")
    proto = result.get("protocol") or {}
    rows = result["rows"]
    lines = ["# lightact bench", ""]
    lines.append(
        f"**Machine**: {env.get('cpu')}, {env.get('cores_available')} cores available "
        f"({env.get('cores_logical')} logical), {env.get('torch_threads')} torch threads, "
        f"device {env.get('device')}{', ' + env['gpu'] if env.get('gpu') else ''}; "
        f"load average {env.get('load_average_1_5_15')}."
    )
    lines.append(
        f"**Software**: torch {env.get('torch')}, torchvision {env.get('torchvision')}, "
        f"timm {env.get('timm')}, onnxruntime {env.get('onnxruntime')}, onnx {env.get('onnx')}, "
        f"python {env.get('python')}, compiler {env.get('cxx_compiler')}."
    )
    if cal:
        lines.append(
            f"**Calibration**: dense fp32 matmul {cal['size']}x{cal['size']}: "
            f"{cal['peak_flops'] / 1e9:.1f} GFLOP/s best, {cal['median_flops'] / 1e9:.1f} median "
            f"({cal['calls']} calls, {cal['threads']} threads); `% peak` = achieved FLOP/s over the best."
        )
    if proto:
        lines.append(
            f"**Protocol**: per (model, backend, batch) warm-up of at least {proto.get('warmup')} calls and "
            f"{proto.get('warmup_s')} s, then timed calls: at least {proto.get('repeats')} and "
            f"{proto.get('min_time_s')} s, at most {proto.get('max_repeats')}, all within a "
            f"{proto.get('budget_s')} s budget that slow models hit first (never fewer than "
            f"{proto.get('min_repeats')} timed calls); the counts done are in the `runs` column "
            "(warm-up+timed). "
            f"The timed calls are split into {proto.get('rounds', 1)} round(s) over the whole run (every "
            "model once per round, re-warmed with one call), and pooled. "
            "Latency: median and p90 of the timed calls; spread: interquartile range / median; drift: "
            "range of the round medians / median, what a second run of this bench may see. "
            "FLOPs: torch.utils.flop_counter (a multiply-add = 2); GMACs = GFLOPs / 2, the fvcore/papers "
            "convention. Memory: extra resident memory at the peak of one call (`mem_method` in the CSV). "
            "Compilation and export time are in `setup_s`, never in the samples. `other load`: CPU "
            "cores used by other processes during the timed calls (a noisy-neighbour gauge); above "
            f"0.25 cores a measurement is redone up to {proto.get('busy_retries', 0)} time(s), "
            "keeping the quieter."
        )
    busy = [r for r in rows if (r.get("other_load") or 0) > 0.25]
    if busy:
        lines.append(
            f"**Warning**: other processes used more than 0.25 cores during {len(busy)} of "
            f"{len(rows)} measurements (`other load` column, in cores): those timings are inflated."
        )
    if result.get("wall_s") is not None:
        lines.append(f"**Wall time**: {result['wall_s']:.0f} s.")
    header = [
        *("model", "class", "input", "backend", "batch", "params M", "GFLOPs", "GMACs", "median ms"),
        *("p90 ms", "spread", "drift", "runs", "other load", "samples/s", "GFLOP/s", "% peak", "peak MiB"),
        "setup s",
    ]
    lines += ["", "| " + " | ".join(header) + " |", "|---|---|---|---|" + "---:|" * (len(header) - 4)]
    for r in rows:
        if r.get("status") != "ok":
            continue
        runs = f"{r.get('warmup_runs')}+{r.get('timed_runs')}"
        lines.append(
            f"| {r['model']} | {r.get('class', '')} | {r.get('input', '')} | {r['backend']} | {r['batch']} "
            f"| {_fmt(r.get('params_m'), 2)} | {_fmt(r.get('gflops'), 2)} | {_fmt(r.get('gmacs'), 2)} "
            f"| {_fmt(r.get('latency_ms_median'))} | {_fmt(r.get('latency_ms_p90'))} "
            f"| {_fmt(r.get('spread_pct'), 1, suffix='%')} | {_fmt(r.get('round_drift_pct'), 1, suffix='%')} "
            f"| {runs} | {_fmt(r.get('other_load'), 2)} "
            f"| {_fmt(r.get('throughput_per_s'), 2)} "
            f"| {_fmt(r.get('achieved_gflops_per_s'))} | {_fmt(r.get('peak_fraction'), 1, 100, '%')} "
            f"| {_fmt(r.get('peak_mem_mib'))} | {_fmt(r.get('setup_s'))} |"
        )
    trained = [r for r in rows if r.get("train_step_ms") is not None or r.get("train_step_error")]
    if trained:
        lines += ["", "Training step (forward + backward + SGD step, eager):", ""]
        lines += ["| model | batch | median ms | spread |", "|---|---:|---:|---:|"]
        for r in trained:
            value = (
                _fmt(r.get("train_step_ms")) if r.get("train_step_ms") is not None else r["train_step_error"]
            )
            spread = _fmt(r.get("train_step_spread_pct"), 1, suffix="%")
            lines.append(f"| {r['model']} | {r['batch']} | {value} | {spread} |")
    notes = sorted({(r["model"], r["note"]) for r in rows if r.get("note")})
    if notes:
        lines += ["", "Notes:", ""] + [f"- {m}: {n}" for m, n in notes]
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        lines += ["", "Failures (the rest of the benchmark ran):", ""]
        seen = set()
        for r in failed:
            key = (r["model"], r["backend"], r.get("error"))
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"- {r['model']} / {r['backend']}: {r.get('error')}")
    return "\n".join(lines) + "\n"


def write_markdown(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(result))
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Up to this max/min ratio of latencies, bars on a linear axis from 0 show every model readably;
# beyond it the small ones would vanish, so the plot switches to dots on a labelled log axis (a
# bar on a log axis starts at an arbitrary minimum, and its length means nothing).
LINEAR_LATENCY_RANGE = 30.0


def plot_latency(result: dict, path: str | Path, batch: int | None = None) -> Path | None:
    """Median latency at the smallest batch per model, one mark per backend, whiskers to p90:
    horizontal bars from 0 on a linear axis, or dots on a log axis when the latencies span more
    than :data:`LINEAR_LATENCY_RANGE` times (the axis label says which)."""
    every = [r for r in result["rows"] if "batch" in r]
    rows = [r for r in every if r.get("status") == "ok"]
    if not rows:
        return None
    batch = batch or min(r["batch"] for r in rows)
    rows = [r for r in rows if r["batch"] == batch]
    failed = [r for r in every if r.get("status") != "ok" and r["batch"] == batch]
    models = list(dict.fromkeys(r["model"] for r in rows + failed))
    backends = list(dict.fromkeys(r["backend"] for r in rows + failed))
    latencies = [r["latency_ms_median"] for r in rows if r["latency_ms_median"] > 0]
    log_scale = bool(latencies) and max(latencies) / min(latencies) > LINEAR_LATENCY_RANGE
    plt = _pyplot()
    height = 0.8 / max(len(backends), 1)
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.45 * len(models) * max(len(backends), 1) ** 0.5 + 1))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, backend in enumerate(backends):
        colour = colours[j % len(colours)]
        ys, xs, err = [], [], []
        for i, model in enumerate(models):
            match = [r for r in rows if r["model"] == model and r["backend"] == backend]
            if match:
                ys.append(i + (j - (len(backends) - 1) / 2) * height)
                xs.append(match[0]["latency_ms_median"])
                err.append(max(match[0]["latency_ms_p90"] - match[0]["latency_ms_median"], 0.0))
        whiskers = [[0] * len(err), err]
        if log_scale:
            ax.errorbar(xs, ys, xerr=whiskers, fmt="o", color=colour, capsize=2, label=backend)
        else:
            ax.barh(ys, xs, height=height, xerr=whiskers, color=colour, label=backend, capsize=2)
        for r in failed:
            if r["backend"] == backend and r["model"] in models:
                y = models.index(r["model"]) + (j - (len(backends) - 1) / 2) * height
                ax.annotate(f"{backend}: failed", (0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize=7, color=colour)  # fmt: skip
    ax.set_yticks(range(len(models)), labels=models)
    ax.invert_yaxis()
    if log_scale:
        ax.set_xscale("log")
        scale = f"log scale: latencies span {max(latencies) / min(latencies):.0f}x"
    else:
        ax.set_xlim(left=0)
        scale = "linear scale"
    ax.set_xlabel(f"latency at batch {batch}, ms (median; whisker to p90; {scale})")
    env = result.get("environment") or {}
    threads = env.get("torch_threads", "?")
    ax.set_title(
        f"{env.get('cpu', '')}, {threads} torch thread{'' if threads == 1 else 's'}, {env.get('device', '')}",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def read_accuracies(path: str | Path) -> dict[str, float]:
    """Accuracies by model from a CSV (columns ``model`` and ``accuracy`` or ``top1``) or a JSON
    (``{model: accuracy}`` or a list of such rows). Fractions or percentages both work."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "rows" in data:
            data = data["rows"]
        if isinstance(data, dict):
            items = data.items()
        else:
            items = [(d["model"], d.get("accuracy", d.get("top1"))) for d in data]
    else:
        with path.open() as f:
            items = [(d["model"], d.get("accuracy") or d.get("top1")) for d in csv.DictReader(f)]
    out = {}
    for model, acc in items:
        if acc in (None, ""):
            continue
        out[str(model)] = float(acc)
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (latency, accuracy) no other point beats on both (lower, higher)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(result: dict, accuracies: dict[str, float], path: str | Path, batch: int = 1) -> Path | None:
    rows = [
        r
        for r in result["rows"]
        if r.get("status") == "ok" and r["batch"] == batch and r["model"] in accuracies
    ]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for backend in dict.fromkeys(r["backend"] for r in rows):
        sel = [r for r in rows if r["backend"] == backend]
        ax.scatter(
            [r["latency_ms_median"] for r in sel], [accuracies[r["model"]] for r in sel], label=backend
        )
    points = [(r["latency_ms_median"], accuracies[r["model"]]) for r in rows]
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1, label="Pareto front")
    for r in rows:
        ax.annotate(r["model"], (r["latency_ms_median"], accuracies[r["model"]]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(f"latency at batch {batch}, ms (median, log scale)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def write_reports(result: dict, out_dir: str | Path, accuracies: str | Path | None = None) -> dict[str, Path]:
    """Write every report into ``out_dir``; returns the written paths by kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        "json": write_json(result, out_dir / "bench.json"),
        "csv": write_csv(result, out_dir / "bench.csv"),
        "markdown": write_markdown(result, out_dir / "bench.md"),
    }
    png = plot_latency(result, out_dir / "latency_by_backend.png")
    if png:
        written["latency_png"] = png
    if accuracies:
        pareto = plot_pareto(result, read_accuracies(accuracies), out_dir / "pareto.png")
        if pareto:
            written["pareto_png"] = pareto
    return written
