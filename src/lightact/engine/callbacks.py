"""Training callbacks: a one-row-per-epoch CSV log, the RNG state that makes resume exact, and
the progress bar."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar


class EpochCSVLogger(L.Callback):
    """Writes ``epochs.csv``: one row per epoch with every logged epoch metric (train and val on
    the same row, unlike Lightning's CSV logger). A resumed run appends to the same file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row |= {k: round(float(v), 6) for k, v in sorted(trainer.callback_metrics.items()) if v.numel() == 1}
        existing = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                existing = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
        columns = list(dict.fromkeys([*row, *(k for r in existing for k in r)]))
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows([*existing, row])


class RNGState(L.Callback):
    """Store and restore torch's RNG so dropout after a resume draws what it would have drawn."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_torch"] = torch.get_rng_state()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if "rng_torch" in checkpoint:
            torch.set_rng_state(checkpoint["rng_torch"])


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar without ``v_num``, the loggers' version: a lightact run has
    its own work dir, and with two loggers the number reads like "0_"."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
