"""STAR-64 against ST-GCN on real skeleton datasets: training time per epoch and inference throughput
(issue 14), and how many torch threads training should use on a small shared machine.

Each model gets exactly the data its experiment config gives it (``lightact train`` would see the same
batches): the config's transforms, batch size and collation (STAR: packed, natural lengths; ST-GCN:
padded to the batch's longest clip, the default). The two models see the same clips in the same order.

* Training: one epoch's batches of the training split (the config's seed; fold 0 for a K-fold config),
  each a forward, cross-entropy, backward and AdamW step in train mode. Timing is interleaved per
  batch (STAR's step on batch i, then ST-GCN's on the same clips, then batch i + 1; the order flips
  every round), so load from other processes hits both alike; an epoch's time is the sum over its
  batches, and the ratio is taken per round. Data preparation (the same for both) is not timed.
* Inference: the test split, eval mode, ``no_grad``, the config's batch size, interleaved likewise;
  clips per second.
* ``--threads 1 2 ...``: the training measurement repeated at each intra-op thread count, interleaved
  (a round runs every count), for ``trainer.num_threads``.
* ``--compile``: both models compiled in place as ``trainer.compile`` does (``torch.compile``,
  dynamic shapes), warmed up on every timed batch first (the compilation's seconds are printed,
  not timed), so that both run compiled.

    python benchmarks/real_skeleton_speed.py --rounds 3                 # both datasets, 1 thread
    python benchmarks/real_skeleton_speed.py --datasets msr --threads 1 2 --rounds 3 --max-batches 4
    python benchmarks/real_skeleton_speed.py --compile --rounds 3 --max-batches 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import format_table, machine_info

from lightact.config import load_config
from lightact.engine.datamodule import build_datamodule
from lightact.engine.folds import fold_config
from lightact.models.registry import create_model, model_entry

CONFIGS = {
    "msr": ("configs/star_msr_xsub.yaml", "configs/stgcn_msr_xsub.yaml"),
    "sbu": ("configs/star_sbu_5fold.yaml", "configs/stgcn_sbu_5fold.yaml"),
}


class Candidate:
    """One model with its config's data: a model, an optimiser, the training and test batches."""

    def __init__(self, config: str, max_batches: int | None, compile: bool = False) -> None:
        cfg = load_config(config)
        if cfg.folds:
            cfg = fold_config(cfg, 0)
        entry = model_entry(cfg.model.name)
        data = build_datamodule(cfg, entry.input_format)
        torch.manual_seed(cfg.seed)
        self.name = cfg.model.name
        self.model = create_model(cfg.model.name, **{**data.model_arguments(), **cfg.model.kwargs})
        if compile:
            self.model.compile(dynamic=True)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr)
        self.train_batches = self._batches(data, "train", max_batches)
        self.test_batches = self._batches(data, "test", max_batches)
        self.batches_per_epoch = len(data.train_dataloader())
        self.parameters = sum(p.numel() for p in self.model.parameters())

    @staticmethod
    def _batches(data, split: str, limit: int | None) -> list:
        loader = data.train_dataloader() if split == "train" else data.test_dataloader()
        batches = []
        for batch in loader:
            batches.append(batch)
            if limit is not None and len(batches) == limit:
                break
        return batches

    def train_step(self, i: int) -> None:
        batch = self.train_batches[i]
        self.model.train()
        loss = F.cross_entropy(self.model(*batch.inputs), batch.labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    @torch.no_grad()
    def infer(self, i: int) -> int:
        self.model.eval()
        batch = self.test_batches[i]
        self.model(*batch.inputs)
        return len(batch.labels)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_dataset(
    name: str,
    configs: tuple[str, str],
    rounds: int,
    max_batches: int | None,
    threads: list[int],
    compile: bool = False,
):
    star, stgcn = (Candidate(config, max_batches, compile) for config in configs)
    pair = (star, stgcn)
    batches = min(len(star.train_batches), len(stgcn.train_batches))
    tests = min(len(star.test_batches), len(stgcn.test_batches))
    warmup = {}
    for c in pair:  # warm-up: one training and one inference step each; compiled: every batch
        start = time.perf_counter()
        for i in range(batches if compile else 1):
            c.train_step(i)
        for i in range(tests if compile else 1):
            c.infer(i)
        warmup[c.name] = time.perf_counter() - start
        print(f"  {name}: {c.name} warm-up {warmup[c.name]:.0f} s", flush=True)
    train_time = {(c.name, n): [] for c in pair for n in threads}
    infer_rate = {c.name: [] for c in pair}
    for r in range(rounds):
        order = pair if r % 2 == 0 else pair[::-1]
        for n in threads:
            torch.set_num_threads(n)
            sums = dict.fromkeys((c.name for c in pair), 0.0)
            for i in range(batches):
                for c in order:
                    sums[c.name] += timed(lambda c=c, i=i: c.train_step(i))
            for c in pair:  # the epoch: per-batch mean times the batches of a full epoch
                train_time[(c.name, n)].append(sums[c.name] / batches * c.batches_per_epoch)
        torch.set_num_threads(threads[0])
        seconds, clips = dict.fromkeys((c.name for c in pair), 0.0), dict.fromkeys((c.name for c in pair), 0)
        for i in range(tests):
            for c in order:
                start = time.perf_counter()
                clips[c.name] += c.infer(i)
                seconds[c.name] += time.perf_counter() - start
        for c in pair:
            infer_rate[c.name].append(clips[c.name] / seconds[c.name])
        print(f"  {name} round {r + 1}/{rounds} done", flush=True)
    return {
        "dataset": name,
        "configs": list(configs),
        "compiled": compile,
        "warmup_seconds": warmup,
        "timed_train_batches": batches,
        "timed_test_batches": tests,
        "models": {
            c.name: {
                "parameters": c.parameters,
                "batches_per_epoch": c.batches_per_epoch,
                "epoch_seconds": {str(n): train_time[(c.name, n)] for n in threads},
                "inference_clips_per_s": infer_rate[c.name],
            }
            for c in pair
        },
        "train_ratio_per_round": {
            str(n): [
                b / a for a, b in zip(train_time[(star.name, n)], train_time[(stgcn.name, n)], strict=True)
            ]
            for n in threads
        },
        "inference_ratio_per_round": [
            a / b for a, b in zip(infer_rate[star.name], infer_rate[stgcn.name], strict=True)
        ],
    }


def report(results: list[dict], threads: list[int]) -> str:
    rows = []
    for res in results:
        star, stgcn = res["models"]["star_64"], res["models"]["stgcn"]
        for n in threads:
            ratios = res["train_ratio_per_round"][str(n)]
            rows.append(
                [
                    res["dataset"],
                    n,
                    f"{statistics.median(star['epoch_seconds'][str(n)]):.1f}",
                    f"{statistics.median(stgcn['epoch_seconds'][str(n)]):.1f}",
                    f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
                ]
            )
    train = format_table(
        ["dataset", "threads", "STAR-64 s/epoch", "ST-GCN s/epoch", "STAR faster by (per-round range)"], rows
    )
    rows = []
    for res in results:
        star, stgcn = res["models"]["star_64"], res["models"]["stgcn"]
        ratios = res["inference_ratio_per_round"]
        rows.append(
            [
                res["dataset"],
                f"{statistics.median(star['inference_clips_per_s']):.0f}",
                f"{statistics.median(stgcn['inference_clips_per_s']):.0f}",
                f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
            ]
        )
    infer = format_table(["dataset", "STAR-64 clips/s", "ST-GCN clips/s", "STAR faster by"], rows)
    return f"training (forward + backward + AdamW), per epoch\n{train}\n\ninference, test split\n{infer}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="intra-op thread counts to time")
    parser.add_argument("--max-batches", type=int, help="time only the first N batches of each split")
    parser.add_argument("--compile", action="store_true", help="both models torch.compiled (trainer.compile)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()  # torch's default here: the machine's cores
    torch.set_num_threads(args.threads[0])
    info = machine_info(torch.device("cpu"))
    info["torch_default_threads"] = default_threads
    start = time.perf_counter()
    results = [
        measure_dataset(d, CONFIGS[d], args.rounds, args.max_batches, args.threads, args.compile)
        for d in args.datasets
    ]
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    info["seconds"] = round(time.perf_counter() - start)
    print(json.dumps(info))
    print(report(results, args.threads))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))


if __name__ == "__main__":
    main()
