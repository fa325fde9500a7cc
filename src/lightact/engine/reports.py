"""What a run leaves for people: metrics JSON, per-class CSV, confusion-matrix PNG, and on request
one CSV row per test sample."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_average_precision,
    multiclass_confusion_matrix,
)

from lightact.utils import atomic_write


def classification_metrics(probs: Tensor, labels: Tensor, class_names: list[str]) -> dict[str, Any]:
    """Top-1, top-5, mean-class accuracy, mAP, the confusion matrix and per-class rows.

    mAP is the mean over classes of one-vs-rest average precision (torchmetrics), the Stanford 40
    measure; a class with no test sample has no AP (NaN) and is left out of the mean.
    """
    num_classes = len(class_names)
    top5 = min(5, num_classes)
    confusion = multiclass_confusion_matrix(probs, labels, num_classes)
    support = confusion.sum(1)
    recall = torch.where(support > 0, confusion.diag() / support.clamp(min=1), torch.nan)
    ap = multiclass_average_precision(probs.float(), labels, num_classes, average=None)
    ap = torch.where(support > 0, ap, torch.nan)
    return {
        "num_samples": len(labels),
        "top1": multiclass_accuracy(probs, labels, num_classes, average="micro").item(),
        f"top{top5}": multiclass_accuracy(probs, labels, num_classes, average="micro", top_k=top5).item(),
        "mean_class_accuracy": multiclass_accuracy(probs, labels, num_classes, average="macro").item(),
        "mAP": float(ap.nanmean()) if bool((support > 0).any()) else float("nan"),
        "per_class": [
            {"class": name, "support": int(support[i]), "accuracy": float(recall[i]), "ap": float(ap[i])}
            for i, name in enumerate(class_names)
        ],
        "confusion_matrix": confusion.tolist(),
    }


def write_reports(metrics: dict[str, Any], class_names: list[str], out_dir: Path, prefix: str = "") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{prefix}metrics.json").write_text(json.dumps(metrics, indent=2))
    with open(out_dir / f"{prefix}per_class.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["class", "support", "accuracy", "ap"])
        writer.writeheader()
        writer.writerows(metrics["per_class"])
    plot_confusion(
        np.array(metrics["confusion_matrix"]),
        class_names,
        out_dir / f"{prefix}confusion_matrix.png",
        title=(
            f"top-1 {metrics['top1']:.1%}, mean class {metrics['mean_class_accuracy']:.1%}, "
            f"mAP {metrics['mAP']:.1%}"
        ),
    )


def write_sample_predictions(
    path: str | Path,
    sample_ids: list[str],
    outputs: Tensor,
    targets: Tensor,
    class_names: list[str],
    task: str = "classification",
    topk: int = 5,
) -> Path:
    """One row per test sample, written atomically. Classification: ``sample, label, prediction,
    correct``, then ``top1, top1_score, ..., topK, topK_score`` (K = ``topk``, at most the number of
    classes; scores are the probabilities averaged over the test views). Regression: ``sample``,
    then ``<target>`` and ``<target>_predicted`` per target."""
    path = Path(path)
    rows: list[list[Any]] = []
    if task == "regression":
        header = ["sample"] + [c for name in class_names for c in (name, f"{name}_predicted")]
        truth, predicted = targets.reshape(len(targets), -1), outputs.reshape(len(outputs), -1)
        for sample, t, o in zip(sample_ids, truth.tolist(), predicted.tolist(), strict=True):
            rows.append([sample] + [f"{v:.6g}" for pair in zip(t, o, strict=True) for v in pair])
    else:
        k = min(topk, len(class_names))
        header = ["sample", "label", "prediction", "correct"]
        header += [c for rank in range(1, k + 1) for c in (f"top{rank}", f"top{rank}_score")]
        scores, order = outputs.topk(k, dim=-1)
        for sample, label, top, score in zip(
            sample_ids, targets.tolist(), order.tolist(), scores.tolist(), strict=True
        ):
            ranked = [v for i, p in zip(top, score, strict=True) for v in (class_names[i], f"{p:.6f}")]
            rows.append([sample, class_names[label], class_names[top[0]], int(top[0] == label), *ranked])

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)

    atomic_write(path, write)
    return path


def plot_confusion(confusion: np.ndarray, class_names: list[str], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    n = len(class_names)
    size = max(5.0, 0.38 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    colour = "white" if rows[i, j] > 0.5 else "black"
                    ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
