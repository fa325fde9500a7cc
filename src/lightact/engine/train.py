"""Training and evaluation entry points behind ``lightact train`` and ``lightact eval``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from lightact.config import CONFIG_FILE_NAME, ExperimentConfig, dump_config
from lightact.engine.callbacks import EpochCSVLogger, RNGState
from lightact.engine.checkpoint import (
    WEIGHTS_FILE,
    AtomicCheckpointIO,
    layout_to_dict,
    load_model,
    save_weights,
)
from lightact.engine.data import SkeletonDataModule
from lightact.engine.module import ClassificationModule
from lightact.engine.reports import classification_metrics, write_reports
from lightact.models.registry import create_model, model_entry

LAST_CHECKPOINT = "checkpoints/last.ckpt"


def model_arguments(cfg: ExperimentConfig, data: SkeletonDataModule) -> dict[str, Any]:
    """Constructor arguments: what the data implies (classes, layout, channels), then the config's."""
    per_joint = data.in_channels * (3 if data.representation == "packed" else 1)
    return {
        "num_classes": data.num_classes,
        "layout": data.layout,
        "in_channels": per_joint,
        **cfg.model.kwargs,
    }


def _precision(cfg: ExperimentConfig) -> str:
    if cfg.trainer.precision != "auto":
        return cfg.trainer.precision
    if torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def build_trainer(cfg: ExperimentConfig, work_dir: Path, callbacks: list[L.Callback] = ()) -> L.Trainer:
    t = cfg.trainer
    ddp = t.strategy.startswith("ddp")
    bars = [RichProgressBar(leave=True)] if t.progress_bar else []
    return L.Trainer(
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=_precision(cfg),
        gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        default_root_dir=work_dir,
        logger=TensorBoardLogger(work_dir, name="tb", version=""),
        callbacks=[
            *bars,
            RNGState(),
            EpochCSVLogger(work_dir / "epochs.csv"),
            *callbacks,
            ModelCheckpoint(
                dirpath=work_dir / "checkpoints",
                filename="best-{epoch:03d}",
                monitor="val/top1",
                mode="max",
                save_last=True,
                save_top_k=1,
            ),
        ],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=t.progress_bar,
        use_distributed_sampler=False,  # SeededShardSampler shards by rank itself
        # torch's SyncBatchNorm runs on GPUs only; on CPU each process normalises its own batch.
        sync_batchnorm=ddp and t.accelerator != "cpu" and torch.cuda.is_available(),
        deterministic=False,
        log_every_n_steps=1,
    )


def train(cfg: ExperimentConfig, resume: bool = False, callbacks: list[L.Callback] = ()) -> Path:
    """Train, then evaluate on the test split; returns the work directory."""
    work_dir = cfg.resolved_work_dir
    last = work_dir / LAST_CHECKPOINT
    if resume and not last.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {last}; start the run without --resume")
    if not resume and last.is_file():
        raise FileExistsError(
            f"{work_dir} already holds a run; pass --resume to continue it or choose another work_dir"
        )
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    entry = model_entry(cfg.model.name)
    data = SkeletonDataModule(cfg.data, cfg.eval, entry.input_format, cfg.seed)
    kwargs = model_arguments(cfg, data)
    model = create_model(cfg.model.name, **kwargs)
    module = ClassificationModule(model, data.num_classes, cfg.optim)
    trainer = build_trainer(cfg, work_dir, callbacks)
    if trainer.is_global_zero:
        work_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, work_dir / CONFIG_FILE_NAME)
    with warnings.catch_warnings():
        # On CPU there is nothing to pin and a small dataset needs no extra loader workers.
        warnings.filterwarnings("ignore", message=".*(does not have many workers|pin_memory).*")
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None)

    if trainer.is_global_zero:
        meta = {
            "model": cfg.model.name,
            "kwargs": {**kwargs, "layout": layout_to_dict(data.layout)},
            "classes": data.class_names,
            "input_format": entry.input_format,
        }
        save_weights(module.model, work_dir / WEIGHTS_FILE, meta)
        evaluate(cfg, work_dir, data=data)
    return work_dir


@torch.no_grad()
def predict_probabilities(model: nn.Module, loader, num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities per sample, averaged over its test views, and the labels."""
    probs_sum, labels, views = None, torch.zeros(num_samples, dtype=torch.long), torch.zeros(num_samples)
    for batch in loader:
        probs = model(*batch.inputs).float().softmax(-1)
        if probs_sum is None:
            probs_sum = torch.zeros(num_samples, probs.shape[1])
        probs_sum.index_add_(0, batch.sample_index, probs)
        views.index_add_(0, batch.sample_index, torch.ones(len(batch)))
        labels[batch.sample_index] = batch.labels
    return probs_sum / views.clamp(min=1)[:, None], labels


def evaluate(
    cfg: ExperimentConfig,
    checkpoint: str | Path,
    data: SkeletonDataModule | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Top-1/top-5/mean-class accuracy on the test split (``eval.num_clips`` views averaged),
    written as JSON, per-class CSV and a confusion-matrix PNG beside the checkpoint."""
    model, meta = load_model(checkpoint)
    if meta["model"] != cfg.model.name:
        raise ValueError(
            f"checkpoint {checkpoint} holds model {meta['model']}, the config asks for {cfg.model.name}"
        )
    data = data or SkeletonDataModule(cfg.data, cfg.eval, meta["input_format"], cfg.seed)
    if data.class_names != meta["classes"]:
        raise ValueError(f"checkpoint {checkpoint} was trained on other classes than this config's data")
    dataset = data.test_dataloader().dataset
    probs, labels = predict_probabilities(model, data.test_dataloader(), len(dataset.annotations))
    metrics = classification_metrics(probs, labels, data.class_names)
    metrics["num_clips"] = cfg.eval.num_clips
    path = Path(checkpoint)
    write_reports(metrics, data.class_names, out_dir or (path if path.is_dir() else path.parent))
    return metrics
