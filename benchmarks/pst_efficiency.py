"""PST's cost against the same backbone without shifts (2D) and with joint space-time attention.

Bars (issue 5, CPU, one run): PST's FLOPs within 1 % and its latency within 10 % of the no-shift
backbone; PST's peak training memory at most 1/3 of joint space-time window attention on the same
backbone and input.

Three variants of one backbone are built from the same constructor (``lightact.models.tps.PST``):
``temporal="alternate"`` (PST: TCS and TPS block by block), ``"none"`` (per-frame 2D Swin, temporal
average) and ``"joint"`` (every window attends over all frames). Latency: one inference call per
variant per round, rounds interleaved (A, B, C, A, B, C, ...) so load on the shared machine hits all
alike; the figure is the median, the ratio is the median of per-round ratios. FLOPs:
``torch.utils.flop_counter`` on one forward (a multiply-add = 2). Memory: two AdamW training steps
(forward, backward, update) per variant and precision, each in a fresh process: peak resident memory
over the process's resident memory before the model was built (weights, optimiser state, gradients,
activations, attention maps; the second step's forward runs with the optimiser state allocated). Two
precisions: 32-bit, and bf16 mixed precision (``torch.autocast``, the CPU counterpart of the 16-bit
mixed precision the paper trained with and our PST configs use on a GPU). Under autocast the matrix
products run in 16 bits but the relative-position bias (an fp32 parameter) promotes the attention
logits, so the softmax and its saved output stay fp32, as CUDA autocast keeps softmax fp32: the
attention maps keep their 32-bit size while most other activations halve. Each regime is measured
with glibc's allocator as it is (peak RSS includes freed memory glibc keeps) and with large blocks
returned on free (peak RSS follows what the step has allocated, the CPU counterpart of
``torch.cuda.max_memory_allocated``); see ``ALLOCATORS``. Gradient checkpointing
(``PST(grad_checkpointing=True)``) is a third switch.

Backbones: ``swin_t`` (the paper's PST-T backbone and input: Swin-T, 32 frames at 224 px, tubelet 2
-> 16 temporal tokens, 7x7 windows; batch 2 per step instead of the paper's 8 per GPU, to fit joint
attention in a small machine's memory), ``swin_t_112`` (the same at 112 px, batch 1, a quarter of
the time) and ``xs`` (``pst_xs``: 8 frames at 32 px, batch 16). ``NAME@FRAMES`` (``swin_t_112@64``)
changes the clip length.

    python benchmarks/pst_efficiency.py --threads 1 --repeats 10 --backbones swin_t swin_t_112@64 xs
"""

from __future__ import annotations

import argparse
import json
import os
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
            "img_size": 224,
        },
        "batch": 2,
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
BACKBONES["swin_t_112"] = {"model": {**BACKBONES["swin_t"]["model"], "img_size": 112}, "batch": 1}
VARIANTS = {"pst": "alternate", "2d": "none", "joint": "joint"}
# Training regimes for the memory probes: (autocast dtype or None for 32-bit, gradient checkpointing)
REGIMES = {
    "32": (None, False),
    "bf16-mixed": (torch.bfloat16, False),
    "32+ckpt": (None, True),
    "bf16-mixed+ckpt": (torch.bfloat16, True),
}
# Memory is measured under two settings of glibc's allocator. By default glibc raises its mmap
# threshold after large blocks are freed, so later large tensors come from the heap and their memory
# stays in the process after it is freed: peak RSS then includes what glibc keeps. Holding the
# threshold at its initial 128 KiB returns large blocks on free, so peak RSS follows what the training
# step has allocated (what ``torch.cuda.max_memory_allocated`` reports on a GPU).
ALLOCATORS = {"glibc default": {}, "large blocks returned": {"MALLOC_MMAP_THRESHOLD_": "131072"}}
# Results are keyed "regime | allocator".
SETTINGS = {f"{r} | {a}": (r, a) for a in ALLOCATORS for r in REGIMES}


def spec_for(backbone: str) -> dict:
    """The backbone's settings; ``NAME@FRAMES`` (e.g. ``swin_t_112@64``) changes the clip length."""
    name, _, frames = backbone.partition("@")
    spec = BACKBONES[name]
    if frames:
        spec = {**spec, "model": {**spec["model"], "num_frames": int(frames)}}
    return spec


def build(backbone: str, variant: str, grad_checkpointing: bool = False) -> tuple[PST, torch.Tensor]:
    spec = spec_for(backbone)
    torch.manual_seed(0)
    model = PST(
        num_classes=174,
        drop_path_rate=0.0,
        temporal=VARIANTS[variant],
        grad_checkpointing=grad_checkpointing,
        **spec["model"],
    )
    m = spec["model"]
    clip = torch.randn(spec["batch"], 3, m["num_frames"], m["img_size"], m["img_size"])
    return model, clip


def memory_probe(backbone: str, variant: str, regime: str, threads: int) -> None:
    """Child process: two training steps; prints the peak resident memory they added and the second
    step's time, as JSON."""
    torch.set_num_threads(threads)
    reset_peak_rss()
    baseline = current_rss_bytes()
    dtype, checkpointing = REGIMES[regime]
    model, clip = build(backbone, variant, grad_checkpointing=checkpointing)
    built = current_rss_bytes()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(2):  # the second step runs with the optimiser's state in memory, as training does
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = model(clip).float().logsumexp(-1).sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    step_s = time.perf_counter() - start
    peak = peak_rss_bytes() - baseline
    print(json.dumps({"peak_delta_bytes": peak, "model_bytes": built - baseline, "step_s": step_s}))


def measure_memory(backbone: str, variant: str, setting: str, threads: int) -> dict:
    regime, allocator = SETTINGS[setting]
    command = [sys.executable, __file__, "--probe", backbone, variant, regime, "--threads", str(threads)]
    env = {**os.environ, **ALLOCATORS[allocator]}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe {backbone}/{variant}/{setting} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def memory_ratio(variants: dict, setting: str, beyond_weights: bool = False) -> float:
    """PST's training peak over joint attention's; ``beyond_weights`` leaves each model's own memory out."""
    pst, joint = (variants[v]["train_peak_mib"][setting] for v in ("pst", "joint"))
    if beyond_weights:
        pst -= variants["pst"]["model_mib"][setting]
        joint -= variants["joint"]["model_mib"][setting]
    return pst / joint


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


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
        for setting in SETTINGS:
            for v in VARIANTS:
                start = time.perf_counter()
                probe = measure_memory(backbone, v, setting, args.threads)
                entry["variants"][v].setdefault("train_peak_mib", {})[setting] = (
                    probe["peak_delta_bytes"] / 2**20
                )
                entry["variants"][v].setdefault("model_mib", {})[setting] = probe["model_bytes"] / 2**20
                entry["variants"][v].setdefault("train_step_s", {})[setting] = probe["step_s"]
                took = time.perf_counter() - start
                log(f"  memory {v} {setting}: {probe['peak_delta_bytes'] / 2**20:.0f} MiB ({took:.0f} s)")
        var = entry["variants"]
        per_round = [p / b for p, b in zip(times["pst"], times["2d"], strict=True)]

        entry["ratios"] = {
            "flops_pst_over_2d": var["pst"]["gflops"] / var["2d"]["gflops"],
            "latency_pst_over_2d": median(per_round),
            "memory_pst_over_joint": {p: memory_ratio(var, p) for p in SETTINGS},
            "memory_beyond_weights_pst_over_joint": {
                p: memory_ratio(var, p, beyond_weights=True) for p in SETTINGS
            },
            "memory_pst_over_2d": {
                p: var["pst"]["train_peak_mib"][p] / var["2d"]["train_peak_mib"][p] for p in SETTINGS
            },
            "flops_joint_over_2d": var["joint"]["gflops"] / var["2d"]["gflops"],
            "latency_joint_over_2d": median(
                [j / b for j, b in zip(times["joint"], times["2d"], strict=True)]
            ),
        }
        r = entry["ratios"]
        entry["bars"] = {
            "flops_within_1pct": abs(r["flops_pst_over_2d"] - 1) <= 0.01,
            "latency_within_10pct": r["latency_pst_over_2d"] <= 1.10,
            "memory_at_most_one_third_of_joint": {
                p: ratio <= 1 / 3 for p, ratio in r["memory_pst_over_joint"].items()
            },
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
            [v, f"{e['gflops']:.2f}", f"{e['latency_s'] * 1e3:.0f}", f"{e['params'] / 1e6:.2f}"]
            for v, e in entry["variants"].items()
        ]
        lines.append(format_table(["variant", "GFLOPs", "latency ms", "params M"], rows))
        r, bars, var = entry["ratios"], entry["bars"], entry["variants"]
        rows = [
            [
                *SETTINGS[setting],
                *(f"{var[v]['train_peak_mib'][setting]:.0f}" for v in VARIANTS),
                f"{r['memory_pst_over_joint'][setting]:.3f}",
                verdict(bars["memory_at_most_one_third_of_joint"][setting]),
                *(f"{var[v]['train_step_s'][setting]:.2f}" for v in VARIANTS),
            ]
            for setting in SETTINGS
        ]
        headers = ["training", "allocator", *(f"{v} MiB" for v in VARIANTS), "PST/joint", "bar <= 1/3"]
        lines.append(format_table([*headers, *(f"{v} step s" for v in VARIANTS)], rows))
        lines.append(
            f"PST/2D FLOPs {r['flops_pst_over_2d']:.4f} (bar <= 1.01: {verdict(bars['flops_within_1pct'])}), "
            f"PST/2D latency {r['latency_pst_over_2d']:.3f} "
            f"(bar <= 1.10: {verdict(bars['latency_within_10pct'])}); "
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
    parser.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
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
