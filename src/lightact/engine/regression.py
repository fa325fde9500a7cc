"""Regression targets (LVU's like ratio and view count): training module, metrics and reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanSquaredError

from lightact.config import OptimConfig
from lightact.data.batch import Batch
from lightact.engine.module import ActionModule

__all__ = ["RegressionModule", "regression_metrics", "write_regression_reports"]


def _as_matrix(x: Tensor) -> Tensor:
    """``[N]`` or ``[N, K]`` -> float ``[N, K]``."""
    x = x.float()
    return x[:, None] if x.dim() == 1 else x


class RegressionModule(ActionModule):
    """Trains ``model(*batch.inputs) -> [B, K]`` against float targets ``[B]`` or ``[B, K]``.

    ``loss`` is ``"mse"`` or ``"l1"`` (more robust to outliers such as viral view counts); the
    metric that picks the best checkpoint is validation MSE, lower is better.
    """

    monitor = ("val/mse", "min")

    def __init__(self, model: nn.Module, num_outputs: int, optim: OptimConfig, loss: str = "mse") -> None:
        if loss not in ("mse", "l1"):
            raise ValueError(f"regression loss must be 'mse' or 'l1', got {loss!r}")
        super().__init__(model, optim)
        self.num_outputs = num_outputs
        self.loss_name = loss
        # Mean over every output of every sample: one number to log and to pick the best checkpoint by.
        self.train_mse = MeanSquaredError()
        self.val_mse = MeanSquaredError()

    def _outputs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        preds = _as_matrix(self(batch))
        targets = _as_matrix(batch.labels)
        if preds.shape != targets.shape:
            raise ValueError(f"the model gives {list(preds.shape)} outputs for {list(targets.shape)} targets")
        return preds, targets

    def training_loss(self, preds: Tensor, batch: Batch) -> Tensor:
        targets = _as_matrix(batch.labels)
        return F.mse_loss(preds, targets) if self.loss_name == "mse" else F.l1_loss(preds, targets)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        preds, targets = self._outputs(batch)
        loss = self.training_loss(preds, batch)
        self.train_mse(preds.flatten(), targets.flatten())
        self.log_epoch("train", loss, "mse", self.train_mse, len(batch))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        preds, targets = self._outputs(batch)
        self.val_mse(preds.flatten(), targets.flatten())
        self.log_epoch("val", self.training_loss(preds, batch), "mse", self.val_mse, len(batch))


def regression_metrics(preds: Tensor, targets: Tensor, names: list[str]) -> dict[str, Any]:
    """MSE (LVU's metric), RMSE, MAE and R^2, overall (mean over outputs) and per output."""
    preds, targets = _as_matrix(preds.detach().cpu()), _as_matrix(targets.detach().cpu())
    if preds.shape != targets.shape:
        raise ValueError(f"{list(preds.shape)} predictions for {list(targets.shape)} targets")
    if len(names) != preds.shape[1]:
        raise ValueError(f"{len(names)} target names for {preds.shape[1]} outputs")
    error = preds - targets
    mse = error.pow(2).mean(0)
    mae = error.abs().mean(0)
    variance = (targets - targets.mean(0)).pow(2).mean(0)
    r2 = torch.where(variance > 0, 1 - mse / variance.clamp(min=1e-12), torch.full_like(mse, float("nan")))
    per_target = [
        {
            "target": name,
            "mse": float(mse[i]),
            "rmse": float(mse[i].sqrt()),
            "mae": float(mae[i]),
            "r2": None if torch.isnan(r2[i]) else float(r2[i]),
        }
        for i, name in enumerate(names)
    ]
    valid_r2 = r2[~torch.isnan(r2)]
    return {
        "task": "regression",
        "num_samples": int(preds.shape[0]),
        "mse": float(mse.mean()),
        "rmse": float(mse.mean().sqrt()),
        "mae": float(mae.mean()),
        "r2": float(valid_r2.mean()) if len(valid_r2) else None,
        "per_target": per_target,
    }


def write_regression_reports(metrics: dict[str, Any], out_dir: str | Path) -> None:
    """``metrics.json`` and ``per_target.csv`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out_dir / "per_target.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["target", "mse", "rmse", "mae", "r2"])
        writer.writeheader()
        writer.writerows(metrics["per_target"])
