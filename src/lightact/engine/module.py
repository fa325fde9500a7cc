"""The Lightning modules that train lightact's models: a base holding what every task shares
(the model, its optimiser and schedule, the epoch log) and the classifier built on it."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from lightact.config import OptimConfig
from lightact.data.batch import Batch


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class ActionModule(L.LightningModule):
    """Trains ``model(*batch.inputs)``: owns its optimiser (AdamW or SGD, no weight decay on norms,
    biases, tokens and position tables) and schedule (warm-up, then cosine), and logs epoch means.
    Tasks add the loss, the metrics and the checkpoint criterion ``monitor``."""

    monitor: tuple[str, str]  # the metric that picks the best checkpoint, and its direction

    def __init__(self, model: nn.Module, optim: OptimConfig) -> None:
        super().__init__()
        self.model = model
        self.optim = optim

    def forward(self, batch: Batch) -> Tensor:
        return self.model(*batch.inputs)

    def log_epoch(self, stage: str, loss: Tensor, name: str, metric: Metric, size: int) -> None:
        """Epoch means of ``<stage>/loss`` and ``<stage>/<name>`` (the metric, shown in the progress
        bar in validation); in training also the learning rate."""
        training = stage == "train"
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,
        )
        self.log(
            f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=not training, batch_size=size
        )
        if training:
            lr = self.optimizers().param_groups[0]["lr"]
            self.log("lr", lr, on_step=False, on_epoch=True, batch_size=size)

    def configure_optimizers(self):
        decay, no_decay = [], []
        # timm models name their position embeddings and tokens; Swin's bias tables are 2D.
        declared = getattr(self.model, "no_weight_decay", set)()
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            # Norms, biases, tokens and position/importance tables are not shrunk towards zero.
            keep = param.ndim <= 1 or name.endswith(".bias") or "relative_position_bias_table" in name
            (no_decay if keep or name in declared else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if self.optim.name == "sgd":
            optimizer = torch.optim.SGD(
                groups, lr=self.optim.lr, momentum=self.optim.momentum, nesterov=self.optim.nesterov
            )
        else:
            optimizer = torch.optim.AdamW(groups, lr=self.optim.lr)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs))
        warmup = max(1, round(self.optim.warmup_epochs * per_epoch))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, total, self.optim.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class ClassificationModule(ActionModule):
    """Trains ``model(*batch.inputs) -> logits`` with label-smoothed cross-entropy; labels are class
    ids or, under mixup/cutmix, soft targets."""

    monitor = ("val/top1", "max")

    def __init__(self, model: nn.Module, num_classes: int, optim: OptimConfig) -> None:
        super().__init__(model, optim)
        self.train_top1 = MulticlassAccuracy(num_classes, average="micro")
        self.val_top1 = MulticlassAccuracy(num_classes, average="micro")

    def training_loss(self, logits: Tensor, batch: Batch) -> Tensor:
        if batch.labels.is_floating_point():
            # Soft targets come from timm's Mixup, which has already applied label smoothing.
            return F.cross_entropy(logits, batch.labels)
        return F.cross_entropy(logits, batch.labels, label_smoothing=self.optim.label_smoothing)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        logits = self(batch)
        loss = self.training_loss(logits, batch)
        self.log_training(loss, logits, batch)
        return loss

    def log_training(self, loss: Tensor, logits: Tensor, batch: Batch) -> None:
        """Epoch means of the loss and top-1 (against the hard labels), and the learning rate."""
        hard = batch.labels.argmax(-1) if batch.labels.is_floating_point() else batch.labels
        self.train_top1(logits, hard)
        self.log_epoch("train", loss, "top1", self.train_top1, len(batch))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self(batch)
        self.val_top1(logits, batch.labels)
        self.log_epoch("val", F.cross_entropy(logits, batch.labels), "top1", self.val_top1, len(batch))
