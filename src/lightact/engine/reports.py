"""What a run leaves for people: metrics JSON, per-class CSV, confusion-matrix PNG."""

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
