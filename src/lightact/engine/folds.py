"""K-fold cross-validation: one training run per fold of the data, then one summary.

Fold ``k`` trains on the data's ``fold{k}_train`` split and is tested on ``fold{k}_test`` (what
``lightact data import`` writes for a spec with ``split.folds``); validation, if any, follows the
config (``data.val_fraction`` holds it out of the fold's training split; it never comes from the
fold's test split). Every fold runs in ``<work_dir>/fold{k}`` with the same seed and recipe;
``folds_summary.json`` and ``folds_summary.csv`` in the work dir give each fold's figures and their
mean and sample standard deviation (ddof 1), plus the pooled accuracy over all test samples.

With ``--resume`` a fold whose ``metrics.json`` exists is not run again and the interrupted fold
continues from its last checkpoint, so a killed cross-validation goes on where it stopped.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from lightact.config import ExperimentConfig, build_config
from lightact.utils import atomic_write

SUMMARY_FILE = "folds_summary.json"
SUMMARY_CSV = "folds_summary.csv"
FOLD_METRICS = ("top1", "mean_class_accuracy")


def fold_split_names(k: int) -> tuple[str, str]:
    return f"fold{k}_train", f"fold{k}_test"


def fold_config(cfg: ExperimentConfig, k: int) -> ExperimentConfig:
    """The experiment of fold ``k``: its splits, its own work dir, no further folding."""
    raw = cfg.model_dump(mode="json")
    train_split, test_split = fold_split_names(k)
    raw["data"].update(train_split=train_split, test_split=test_split)
    if raw["data"].get("val_fraction", 0) == 0:
        raw["data"]["val_split"] = None  # validating on the fold's test split would be peeking
    raw.update(name=f"{cfg.name}_fold{k}", work_dir=str(cfg.resolved_work_dir / f"fold{k}"), folds=None)
    return build_config(raw)


def check_folds(cfg: ExperimentConfig) -> None:
    """Fail before fold 0 trains when the data lacks one of the K folds' splits."""
    if cfg.data.kind != "skeleton":
        raise ValueError(f"cross-validation (folds) reads fold splits of skeleton data, not {cfg.data.kind}")
    from lightact.data.skeleton.dataset import SplitError
    from lightact.engine.skeleton_data import load_skeleton_source

    splits = load_skeleton_source(cfg.data).get("split") or {}
    wanted = [name for k in range(cfg.folds) for name in fold_split_names(k)]
    missing = [name for name in wanted if name not in splits]
    if missing:
        folds = sorted({n.split("_")[0] for n in splits if n.startswith("fold") and n.endswith("_test")})
        raise SplitError(
            f"folds={cfg.folds}: {cfg.data.path or 'the data'} has no split {missing[0]!r} (its folds: "
            f"{', '.join(folds) or 'none'}; all splits: {', '.join(sorted(splits)) or 'none'})"
        )


def summarise(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of each fold metric, and the pooled accuracy."""
    summary: dict[str, Any] = {"folds": len(per_fold), "per_fold": per_fold}
    for key in FOLD_METRICS:
        values = [f[key] for f in per_fold]
        summary[key] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        }
    correct = sum(round(f["top1"] * f["num_samples"]) for f in per_fold)
    summary["pooled_top1"] = correct / sum(f["num_samples"] for f in per_fold)
    return summary


def _write_summary(summary: dict[str, Any], work_dir: Path) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2)
    atomic_write(work_dir / SUMMARY_FILE, lambda tmp: Path(tmp).write_text(text))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["fold", "num_samples", *FOLD_METRICS])
    for f in summary["per_fold"]:
        writer.writerow([f["fold"], f["num_samples"], *(f"{f[k]:.4f}" for k in FOLD_METRICS)])
    writer.writerow(["mean", "", *(f"{summary[k]['mean']:.4f}" for k in FOLD_METRICS)])
    writer.writerow(["std", "", *(f"{summary[k]['std']:.4f}" for k in FOLD_METRICS)])
    atomic_write(work_dir / SUMMARY_CSV, lambda tmp: Path(tmp).write_text(out.getvalue()))


def train_folds(
    cfg: ExperimentConfig, resume: bool = False, callbacks: list[L.Callback] = ()
) -> dict[str, Any]:
    """Train and test every fold, then write and return the summary."""
    from lightact.engine.train import LAST_CHECKPOINT, train

    if not cfg.folds:
        raise ValueError("train_folds needs cfg.folds (the number of folds)")
    check_folds(cfg)
    per_fold = []
    for k in range(cfg.folds):
        fold = fold_config(cfg, k)
        work_dir = fold.resolved_work_dir
        metrics_file = work_dir / "metrics.json"
        if not (resume and metrics_file.is_file()):
            train(fold, resume=resume and (work_dir / LAST_CHECKPOINT).is_file(), callbacks=callbacks)
        metrics = json.loads(metrics_file.read_text())
        per_fold.append(
            {
                "fold": k,
                "num_samples": metrics["num_samples"],
                **{key: metrics[key] for key in FOLD_METRICS},
                "confusion_matrix": metrics["confusion_matrix"],
                "work_dir": str(work_dir),
            }
        )
    summary = summarise(per_fold)
    summary["confusion_matrix"] = np.sum([f["confusion_matrix"] for f in per_fold], axis=0).tolist()
    _write_summary(summary, cfg.resolved_work_dir)
    return summary
