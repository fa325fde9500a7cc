"""STAN against its two baselines on the embedded long-range task, same budget, several seeds.

The embedded long-video set (``lightact data synth longvideo``: 160 two-minute 64x64 videos at
4 fps, 4 classes = scene texture x which of two events, more than 30 s apart, came first) is
rendered and its features extracted once (random-weight timm/resnet10t on 64x64 frames at 1 fps;
the tiny 3D CNN ``clip3d_tiny`` on 8-frame 32x32 clips every 2 s). Then each model trains with its
shipped config (``<model>_synthlong``: same epochs, batch size, optimiser and schedule)
through ``lightact train`` for every seed, and the validation top-1 is read from ``metrics.json``.

    python benchmarks/stan_longrange.py [--seeds 0 1 2] [--root data/synth_longvideo] [--threads 1]

Bars: STAN >= 15 points top-1 over mean pooling, and a clear margin over the single-stream
transformer. Mean pooling sees the scene but cannot tell the order of the events (expected about
50%: the scene right, the order a coin toss).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import torch
from _common import format_table, machine_info

from lightact.config import load_config
from lightact.configs import CONFIG_DIR
from lightact.engine.train import train

CONFIGS = CONFIG_DIR
MODELS = ("stan", "single_stream", "meanpool_linear")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path("data/synth_longvideo"), help="embedded set")
    parser.add_argument("--work", type=Path, default=Path("work_dirs/stan_longrange"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results: dict[str, dict] = {}
    started_all = time.perf_counter()
    for model in args.models:
        results[model] = {"top1": [], "seconds": [], "params": None}
        for seed in args.seeds:
            work_dir = args.work / f"{model}_seed{seed}"
            overrides = [
                f"seed={seed}",
                f"work_dir={work_dir}",
                f"data.synth.root={args.root}",
                "trainer.progress_bar=false",
                f"trainer.num_threads={args.threads}",
            ]
            cfg = load_config(CONFIGS / f"{model}_synthlong.yaml", overrides)
            if not (work_dir / "metrics.json").is_file():
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    train(cfg)
                results[model]["seconds"].append(time.perf_counter() - started)
            metrics = json.loads((work_dir / "metrics.json").read_text())
            results[model]["top1"].append(100 * metrics["top1"])
            if results[model]["params"] is None:
                from lightact.engine.checkpoint import load_model

                net, _ = load_model(work_dir)
                results[model]["params"] = sum(p.numel() for p in net.parameters())
            print(f"{model} seed {seed}: top-1 {100 * metrics['top1']:.1f}%", flush=True)

    rows = []
    for model, r in results.items():
        top1 = r["top1"]
        std = statistics.stdev(top1) if len(top1) > 1 else 0.0
        r["mean"], r["std"] = statistics.mean(top1), std
        seconds = f"{statistics.mean(r['seconds']):.0f}" if r["seconds"] else "(cached)"
        rows.append(
            [
                model,
                f"{r['params'] / 1e3:.0f} k",
                " / ".join(f"{t:.1f}" for t in top1),
                f"{r['mean']:.1f} ± {std:.1f}",
                seconds,
            ]
        )
    print(f"machine: {machine_info(torch.device('cpu'))}; total {time.perf_counter() - started_all:.0f} s")
    print(format_table(["model", "params", "top-1 per seed (%)", "mean ± std", "s / run"], rows))
    if "stan" in results:
        stan = results["stan"]
        for other, bar in (("meanpool_linear", 15.0), ("single_stream", None)):
            if other in results:
                gap = stan["mean"] - results[other]["mean"]
                worst = min(stan["top1"]) - max(results[other]["top1"])
                text = (
                    f"STAN - {other}: {gap:+.1f} points (worst STAN seed - best {other} seed: {worst:+.1f})"
                )
                if bar is not None:
                    text += f"; bar >= {bar:g}: {'PASS' if gap >= bar else 'FAIL'}"
                print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
