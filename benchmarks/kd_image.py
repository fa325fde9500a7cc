"""Knowledge distillation on the embedded still-image set (issue 6's bars).

(a) ``--part accuracy``: the same student trained with and without KD, same epochs, same data,
    same optimiser, for several seeds; top-1 and mAP on the test split, mean +- std.
(b) ``--part speed``: in one process, training epochs of the same KD run with the teacher run
    online on every batch and with its logits read from the cache, interleaved
    (online, cached, online, cached, ...), timed from epoch start to epoch end without validation;
    the one-off cost of building the cache is reported beside it.

The teacher is a lightact work directory (``lightact train configs/convnext_atto_synthimage.yaml``).
For (b) a ``--speed-teacher`` model name (e.g. ``timm/convnext_tiny``, the paper's teacher size)
can be timed with random weights: the time of a forward pass does not depend on the weights.

    python benchmarks/kd_image.py --teacher work_dirs/convnext_atto_synthimage --out kd_image.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info  # noqa: E402

from lightact.config import build_config  # noqa: E402
from lightact.engine.checkpoint import load_model  # noqa: E402
from lightact.engine.datamodule import build_datamodule  # noqa: E402
from lightact.engine.reports import classification_metrics  # noqa: E402
from lightact.engine.train import model_arguments, predict_probabilities, train  # noqa: E402

# ViT with half of ViT-Ti's width and depth, 8x8 patches on 64x64 images: a CPU-sized student.
STUDENT = {"name": "timm/vit_tiny_patch16_224", "patch_size": 8, "embed_dim": 96, "depth": 6, "num_heads": 3}


def experiment(name: str, out: Path, seed: int, epochs: int, distill: dict[str, Any] | None, **extra) -> dict:
    raw = {
        "name": name,
        "seed": seed,
        "work_dir": str(out / name),
        "model": dict(STUDENT),
        "data": {
            "kind": "image",
            "batch_size": 32,
            "img_size": 64,
            "crop_scale": [0.6, 1.0],
            "synth": {"samples_per_class": 150},
        },
        "optim": {
            "name": "adamw",
            "lr": 1e-3,
            "weight_decay": 0.05,
            "warmup_epochs": 1,
            "label_smoothing": 0.1,
        },
        "trainer": {"max_epochs": epochs, "num_threads": 1, "progress_bar": False},
    }
    if distill is not None:
        raw["distill"] = distill
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return raw


def test_metrics(raw: dict) -> dict[str, float]:
    """Top-1 and mAP of a finished run's weights on the test split (centre crop)."""
    cfg = build_config(raw)
    model, meta = load_model(cfg.resolved_work_dir)
    data = build_datamodule(cfg, meta["input_format"])
    loader = data.test_dataloader()
    probs, labels = predict_probabilities(model, loader, loader.dataset.num_samples)
    metrics = classification_metrics(probs, labels, data.class_names)
    return {"top1": metrics["top1"], "mAP": metrics["mAP"]}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def accuracy_part(args, out: Path) -> dict:
    teacher = {
        "teacher": args.teacher_name,
        "teacher_weights": str(args.teacher),
        "mode": args.mode,
        "alpha": args.alpha,
        "temperature": args.temperature,
        "cache": args.cache,
        "cache_views": args.cache_views,
    }
    runs: dict[str, list[dict[str, float]]] = {"no_kd": [], "kd": []}
    for seed in args.seeds:
        for kind, distill in (("no_kd", None), ("kd", teacher)):
            if kind not in args.kinds:
                continue
            raw = experiment(f"{kind}_s{seed}", out, seed, args.epochs, distill)
            start = time.perf_counter()
            if not (out / raw["name"] / "model.safetensors").is_file():
                train(build_config(raw))
            result = {**test_metrics(raw), "seconds": time.perf_counter() - start}
            runs[kind].append(result)
            print(kind, seed, result, flush=True)
    teacher_raw = json.loads((Path(args.teacher) / "metrics.json").read_text())
    return {
        "student": STUDENT,
        "epochs": args.epochs,
        "distill": teacher,
        "teacher_test": {"top1": teacher_raw.get("top1"), "mAP": teacher_raw.get("mAP")},
        "runs": runs,
        "top1": {k: summary([r["top1"] for r in v]) for k, v in runs.items() if v},
        "mAP": {k: summary([r["mAP"] for r in v]) for k, v in runs.items() if v},
    }


class EpochTimer(L.Callback):
    """Wall time of each training epoch (validation excluded)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def speed_part(args, out: Path) -> dict:
    from lightact.engine.distill import DistillationModule, build_teacher
    from lightact.models.registry import create_model

    teacher_weights = args.teacher
    if args.speed_teacher:  # random weights of another size: only its speed matters here
        from safetensors.torch import save_file

        cfg = build_config(experiment("speed_probe", out, 0, 1, None))
        data = build_datamodule(cfg, "image")
        model = create_model(args.speed_teacher, num_classes=data.num_classes)
        teacher_weights = out / "speed_teacher.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, teacher_weights)
    teacher_name = args.speed_teacher or args.teacher_name
    times: dict[str, list[float]] = {"online": [], "cached": []}
    cache_build = None
    for round_ in range(args.rounds):
        for cache in ("online", "cached"):
            distill = {
                "teacher": teacher_name,
                "teacher_weights": str(teacher_weights),
                "mode": "soft",
                "cache": cache,
                "cache_views": args.cache_views,
                "cache_path": str(out / "speed_cache.safetensors"),
            }
            raw = experiment(
                f"speed_{cache}_{round_}", out, 0, 1, distill, trainer={"check_val_every_n_epoch": 1}
            )
            cfg = build_config(raw)
            L.seed_everything(0, verbose=False)
            data = build_datamodule(cfg, "image")
            student = create_model(cfg.model.name, **model_arguments(cfg, data))
            module = DistillationModule(
                student, data.num_classes, cfg.optim, cfg.distill, build_teacher(cfg.distill, data)
            )
            timer = EpochTimer()
            trainer = L.Trainer(
                max_epochs=1,
                accelerator="cpu",
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                limit_val_batches=0,
                callbacks=[timer],
                default_root_dir=out / raw["name"],
                use_distributed_sampler=False,
            )
            trainer.fit(module, datamodule=data)
            if cache == "cached" and getattr(module, "cache_seconds", None) is not None:
                cache_build = module.cache_seconds  # only the first cached round builds it
            times[cache].extend(timer.seconds)
            print(cache, round_, timer.seconds, flush=True)
    online, cached = statistics.median(times["online"]), statistics.median(times["cached"])
    return {
        "teacher": teacher_name,
        "student": STUDENT,
        "cache_views": args.cache_views,
        "epoch_seconds": times,
        "median_online": online,
        "median_cached": cached,
        "speedup": online / cached,
        "cache_build_seconds": cache_build,
        "break_even_epochs": None if cache_build is None else cache_build / max(online - cached, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", type=Path, required=True, help="teacher work dir")
    parser.add_argument("--teacher-name", default="timm/convnext_atto")
    parser.add_argument("--part", choices=["accuracy", "speed", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=["no_kd", "kd"],
        default=["no_kd", "kd"],
        help="which arms to run (runs already in --work are read back, not retrained)",
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--mode", default="hard")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--cache", default="cached")
    parser.add_argument("--cache-views", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--speed-teacher", default=None, help="time this teacher (random weights) instead")
    parser.add_argument("--work", type=Path, default=Path("work_dirs/kd_image_bench"))
    parser.add_argument("--out", type=Path, default=Path("kd_image.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": machine_info(torch.device("cpu")), "command": " ".join(sys.argv)}
    if args.part in ("accuracy", "all"):
        result["accuracy"] = accuracy_part(args, args.work)
    if args.part in ("speed", "all"):
        result["speed"] = speed_part(args, args.work)
    result["machine_after"] = machine_info(torch.device("cpu"))
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
