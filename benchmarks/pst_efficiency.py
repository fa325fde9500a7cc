"""PST's cost against the same backbone without shifts (2D) and with joint space-time attention.

Bars (issue 5, CPU, one run): PST's FLOPs within 1 % and its latency within 10 % of the no-shift
backbone; PST's peak training memory at most 1/3 of joint space-time window attention on the same
backbone and input.

Three variants of one backbone are built from the same constructor (``lightact.models.tps.PST``):
``temporal="alternate"`` (PST: TCS and TPS block by block), ``"none"`` (per-frame 2D Swin, temporal
average) and ``"joint"`` (every window attends over all frames). Latency: one inference call per
variant per round, rounds interleaved (A, B, C, A, B, C, ...) so load on the shared machine hits all
alike; the figure is the median, the ratio is the median of per-round ratios. FLOPs:
``torch.utils.flop_counter`` on one forward (a multiply-add = 2). Memory: one training step
(forward + backward) per variant, each in a fresh process: peak resident memory over the process's
resident memory before the model was built (weights, gradients, activations, attention maps).

Backbones: ``swin_t`` (the paper's PST-T backbone and clip length: Swin-T, 32 frames, tubelet 2 -> 16
temporal tokens, 7x7 windows) at 112 px instead of 224 (CPU), and ``xs`` (``pst_xs``: 8 frames at 32 px,
batch 16). ``--backbones swin_t@64`` runs Swin-T on 64 frames (32 temporal tokens).

    python benchmarks/pst_efficiency.py --threads 1 --repeats 10 --out pst_efficiency.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import (
    count_flops,
    current_rss_bytes,
    format_table,
    interleaved_timings,
    machine_info,
    median,
    peak_rss_bytes,
    reset_peak_rss,
)

from lightact.models.tps import PST

BACKBONES = {
    "swin_t": {
        "model": {
            "embed_dim": 96,
            "depths": (2, 2, 6, 2),
            "num_heads": (3, 6, 12, 24),
            "window_size": 7,
            "tubelet_size": 2,
            "num_frames": 32,
            "img_size": 112,
        },
        "batch": 1,
    },
    "xs": {  # pst_xs as registered: the embedded data's model
        "model": {
            "embed_dim": 32,
            "depths": (2, 2),
            "num_heads": (2, 4),
            "window_size": 4,
            "num_frames": 8,
            "img_size": 32,
        },
        "batch": 16,
    },
}
VARIANTS = {"pst": "alternate", "2d": "none", "joint": "joint"}


def spec_for(backbone: str) -> dict:
    """The backbone's settings; ``NAME@FRAMES`` (e.g. ``swin_t@64``) changes the clip length."""
    name, _, frames = backbone.partition("@")
    spec = BACKBONES[name]
    if frames:
        spec = {**spec, "model": {**spec["model"], "num_frames": int(frames)}}
    return spec


def build(backbone: str, variant: str) -> tuple[PST, torch.Tensor]:
    spec = spec_for(backbone)
    torch.manual_seed(0)
    model = PST(num_classes=174, drop_path_rate=0.0, temporal=VARIANTS[variant], **spec["model"])
    m = spec["model"]
    clip = torch.randn(spec["batch"], 3, m["num_frames"], m["img_size"], m["img_size"])
    return model, clip


def memory_probe(backbone: str, variant: str, threads: int) -> None:
    """Child process: one training step; prints the peak resident memory it added, as JSON."""
    torch.set_num_threads(threads)
    reset_peak_rss()
    baseline = current_rss_bytes()
    model, clip = build(backbone, variant)
    built = current_rss_bytes()
    loss = model(clip).logsumexp(-1).sum()
    loss.backward()
    print(json.dumps({"peak_delta_bytes": peak_rss_bytes() - baseline, "model_bytes": built - baseline}))


def measure_memory(backbone: str, variant: str, threads: int) -> dict:
    command = [sys.executable, __file__, "--probe", backbone, variant, "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe {backbone}/{variant} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    result = {"machine": machine_info(torch.device("cpu")), "backbones": {}}
    for backbone in args.backbones:
        log(f"== {backbone}")
        entry: dict = {"input": spec_for(backbone), "variants": {}}
        models = {v: build(backbone, v) for v in VARIANTS}
        for v, (model, clip) in models.items():
            model.eval()
            with torch.no_grad():
                flops = count_flops(lambda m=model, c=clip: m(c))
            params = sum(p.numel() for p in model.parameters())
            entry["variants"][v] = {"gflops": flops / 1e9, "params": params}
            log(f"  {v}: {flops / 1e9:.2f} GFLOPs, {params / 1e6:.2f} M parameters")

        def infer(model: PST, clip: torch.Tensor):
            def call() -> None:
                with torch.no_grad():
                    model(clip)

            return call

        times = interleaved_timings(
            {v: infer(m, c) for v, (m, c) in models.items()}, repeats=args.repeats, warmup=1, progress=log
        )
        for v, t in times.items():
            entry["variants"][v]["latency_s"] = median(t)
            entry["variants"][v]["latency_rounds_s"] = t
        for v in VARIANTS:
            start = time.perf_counter()
            probe = measure_memory(backbone, v, args.threads)
            entry["variants"][v]["train_peak_mib"] = probe["peak_delta_bytes"] / 2**20
            entry["variants"][v]["model_mib"] = probe["model_bytes"] / 2**20
            took = time.perf_counter() - start
            log(f"  memory {v}: {entry['variants'][v]['train_peak_mib']:.0f} MiB ({took:.0f} s)")
        var = entry["variants"]
        per_round = [p / b for p, b in zip(times["pst"], times["2d"], strict=True)]
        entry["ratios"] = {
            "flops_pst_over_2d": var["pst"]["gflops"] / var["2d"]["gflops"],
            "latency_pst_over_2d": median(per_round),
            "memory_pst_over_joint": var["pst"]["train_peak_mib"] / var["joint"]["train_peak_mib"],
            "memory_beyond_weights_pst_over_joint": (var["pst"]["train_peak_mib"] - var["pst"]["model_mib"])
            / (var["joint"]["train_peak_mib"] - var["joint"]["model_mib"]),
            "flops_joint_over_2d": var["joint"]["gflops"] / var["2d"]["gflops"],
            "latency_joint_over_2d": median(
                [j / b for j, b in zip(times["joint"], times["2d"], strict=True)]
            ),
        }
        r = entry["ratios"]
        entry["bars"] = {
            "flops_within_1pct": abs(r["flops_pst_over_2d"] - 1) <= 0.01,
            "latency_within_10pct": r["latency_pst_over_2d"] <= 1.10,
            "memory_at_most_one_third_of_joint": r["memory_pst_over_joint"] <= 1 / 3,
        }
        result["backbones"][backbone] = entry
    result["machine"]["load_average_after"] = list(machine_info(torch.device("cpu"))["load_average_1_5_15"])
    return result


def report(result: dict) -> str:
    lines = []
    for backbone, entry in result["backbones"].items():
        m = entry["input"]["model"]
        lines.append(
            f"\n{backbone}: batch {entry['input']['batch']} x {m['num_frames']} frames x {m['img_size']} px "
            f"(window {m['window_size']}, tubelet {m.get('tubelet_size', 1)})"
        )
        rows = [
            [
                v,
                f"{e['gflops']:.2f}",
                f"{e['latency_s'] * 1e3:.0f}",
                f"{e['train_peak_mib']:.0f}",
                f"{e['params'] / 1e6:.2f}",
            ]
            for v, e in entry["variants"].items()
        ]
        lines.append(format_table(["variant", "GFLOPs", "latency ms", "train peak MiB", "params M"], rows))
        r, b = entry["ratios"], {k: "PASS" if v else "FAIL" for k, v in entry["bars"].items()}
        lines.append(
            f"PST/2D FLOPs {r['flops_pst_over_2d']:.4f} (bar <= 1.01: {b['flops_within_1pct']}), "
            f"PST/2D latency {r['latency_pst_over_2d']:.3f} (bar <= 1.10: {b['latency_within_10pct']}), "
            f"PST/joint train memory {r['memory_pst_over_joint']:.3f} "
            f"(bar <= 0.333: {b['memory_at_most_one_third_of_joint']}); "
            f"joint/2D FLOPs {r['flops_joint_over_2d']:.2f}, latency {r['latency_joint_over_2d']:.2f}"
        )
    mach = result["machine"]
    lines.append(
        f"\nmachine: {mach['cpu']}, {mach['cores']} cores, {mach['threads']} torch thread(s), "
        f"load {mach['load_average_1_5_15']} -> {mach['load_average_after']}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), help=spec_for.__doc__)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--probe", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        memory_probe(*args.probe, args.threads)
        return
    result = run(args)
    print(report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
