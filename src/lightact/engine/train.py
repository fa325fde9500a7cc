"""Training and evaluation entry points behind ``lightact train`` and ``lightact eval``."""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from lightact.config import CONFIG_FILE_NAME, ExperimentConfig, dump_config
from lightact.data.skeleton.layouts import Layout
from lightact.engine.callbacks import EpochCSVLogger, RNGState
from lightact.engine.checkpoint import AtomicCheckpointIO, load_model, save_weights
from lightact.engine.datamodule import ActionDataModule, build_datamodule
from lightact.engine.module import ActionModule, ClassificationModule
from lightact.engine.reports import classification_metrics, write_reports
from lightact.errors import UsageError, check_writable_dir
from lightact.models.registry import create_model, model_entry
from lightact.models.weights import WEIGHTS_FILE, load_pretrained
from lightact.utils import check_unlocked, exclusive_lock

LAST_CHECKPOINT = "checkpoints/last.ckpt"
LOCK_FILE = ".lock"  # held by the run that uses the work directory


def build_module(cfg: ExperimentConfig, model: nn.Module, data: ActionDataModule) -> ActionModule:
    """The training module: distillation when the config has a teacher, regression when the data's
    targets are numbers, plain classification otherwise."""
    if cfg.distill is not None:
        from lightact.engine.distill import DistillationModule, build_teacher

        teacher = build_teacher(cfg.distill, data)
        return DistillationModule(model, data.num_classes, cfg.optim, cfg.distill, teacher)
    if data.task == "regression":
        from lightact.engine.regression import RegressionModule

        return RegressionModule(model, data.num_classes, cfg.optim, loss=data.regression_loss)
    return ClassificationModule(model, data.num_classes, cfg.optim)


def model_arguments(cfg: ExperimentConfig, data: ActionDataModule) -> dict[str, Any]:
    """The model's constructor arguments: those it takes from what the data implies (classes, input
    size, channels, ...), then the config's ``model`` keys."""
    return {**model_entry(cfg.model.name).data_arguments(data.model_arguments()), **cfg.model.kwargs}


def _json_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v.to_dict() if isinstance(v, Layout) else v for k, v in kwargs.items()}


def _precision(cfg: ExperimentConfig) -> str:
    if cfg.trainer.precision != "auto":
        return cfg.trainer.precision
    if torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def build_trainer(
    cfg: ExperimentConfig,
    work_dir: Path,
    callbacks: list[L.Callback] = (),
    monitor: tuple[str, str] = ClassificationModule.monitor,
) -> L.Trainer:
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
                monitor=monitor[0],
                mode=monitor[1],
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
    # Everything that can be checked is, before the work directory is made or a long step starts.
    check_writable_dir(work_dir, "work_dir")
    if _first_process():  # the other ranks a launcher starts run while rank 0 holds the lock
        check_unlocked(work_dir / LOCK_FILE, f"work_dir {work_dir}")
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
    if entry.modality != cfg.data.kind:
        raise UsageError(
            f"model {cfg.model.name} takes {entry.modality} input but data.kind is {cfg.data.kind!r}"
        )
    data = build_datamodule(cfg, entry.input_format)
    data.prepare_data()  # the model's arguments may come from the data (classes, feature widths)
    data.check()
    kwargs = model_arguments(cfg, data)
    model = create_model(cfg.model.name, **kwargs)
    if cfg.model.weights is not None and not resume:
        skipped = load_pretrained(model, cfg.model.weights)
        if skipped["missing"] or skipped["shape_mismatch"]:
            warnings.warn(
                f"{cfg.model.weights}: {len(skipped['missing'])} tensors start from random values "
                f"(e.g. {(skipped['shape_mismatch'] or skipped['missing'])[:3]})",
                stacklevel=2,
            )
    module = build_module(cfg, model, data)
    trainer = build_trainer(cfg, work_dir, callbacks, module.monitor)
    # One run per work directory at a time: rank 0 holds its lock for the whole run.
    lock = (
        exclusive_lock(work_dir / LOCK_FILE, f"work_dir {work_dir}")
        if trainer.is_global_zero
        else nullcontext()
    )
    with lock:
        _fit(cfg, trainer, module, data, work_dir, last if resume else None)
        if trainer.is_global_zero:
            meta = {
                "model": cfg.model.name,
                "kwargs": _json_arguments(kwargs),
                "classes": data.class_names,
                "modality": entry.modality,
                "input_format": entry.input_format,
                "task": data.task,
                "data": data.inference_meta(),
            }
            save_weights(module.model, work_dir / WEIGHTS_FILE, meta)
            evaluate(cfg, work_dir, data=data)
    return work_dir


def _first_process() -> bool:
    """Whether this is the process a user started, not a rank a distributed launcher started."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def _fit(
    cfg: ExperimentConfig,
    trainer: L.Trainer,
    module: ActionModule,
    data: ActionDataModule,
    work_dir: Path,
    resume_from: Path | None,
) -> None:
    if trainer.is_global_zero:
        work_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, work_dir / CONFIG_FILE_NAME)
    with warnings.catch_warnings():
        # On CPU there is nothing to pin and a small dataset needs no extra loader workers.
        warnings.filterwarnings("ignore", message=".*(does not have many workers|pin_memory).*")
        trainer.fit(module, datamodule=data, ckpt_path=str(resume_from) if resume_from else None)


@torch.no_grad()
def predict_probabilities(
    model: nn.Module, loader, num_samples: int, softmax: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the outputs (class probabilities, or raw values for regression) averaged over
    its test views, and the targets."""
    out_sum, targets, views = None, None, torch.zeros(num_samples)
    for batch in loader:
        out = model(*batch.inputs).float()
        out = out.softmax(-1) if softmax else out
        if out_sum is None:
            out_sum = torch.zeros(num_samples, *out.shape[1:])
            targets = torch.zeros(num_samples, *batch.labels.shape[1:], dtype=batch.labels.dtype)
        out_sum.index_add_(0, batch.sample_index, out)
        views.index_add_(0, batch.sample_index, torch.ones(len(batch)))
        targets[batch.sample_index] = batch.labels
    if out_sum is None:
        raise ValueError("the test split is empty")
    seen = views > 0
    if not seen.all():
        # Every view of these samples failed to load (an undecodable video): they are left out of
        # the metrics rather than scored as all-zero predictions.
        warnings.warn(
            f"{int((~seen).sum())} test sample(s) had no usable view and are left out", stacklevel=2
        )
    return out_sum[seen] / views[seen].view(-1, *[1] * (out_sum.ndim - 1)), targets[seen]


def evaluate(
    cfg: ExperimentConfig,
    checkpoint: str | Path,
    data: ActionDataModule | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Top-1/top-5/mean-class accuracy (or regression errors) on the test split, test views
    averaged, written as JSON, per-class CSV and a confusion-matrix PNG beside the checkpoint."""
    path = Path(checkpoint)
    out_dir = out_dir or (path if path.is_dir() else path.parent)
    check_writable_dir(out_dir, "the report folder")
    model, meta = load_model(checkpoint)
    if meta["model"] != cfg.model.name:
        raise UsageError(
            f"checkpoint {checkpoint} holds model {meta['model']}, the config asks for {cfg.model.name}"
        )
    if data is None:
        data = build_datamodule(cfg, meta["input_format"])
        data.prepare_data()
        data.check()
    if data.class_names != meta["classes"]:
        raise UsageError(
            f"checkpoint {checkpoint} was trained on other classes than this config's data "
            f"({len(meta['classes'])} vs {len(data.class_names)})"
        )
    loader = data.test_dataloader()
    regression = data.task == "regression"
    outputs, targets = predict_probabilities(model, loader, loader.dataset.num_samples, not regression)
    if regression:
        from lightact.engine.regression import regression_metrics, write_regression_reports

        metrics = regression_metrics(outputs, targets, data.class_names)
        metrics["num_clips"] = data.test_views
        write_regression_reports(metrics, out_dir)
    else:
        metrics = classification_metrics(outputs, targets, data.class_names)
        metrics["num_clips"] = data.test_views
        write_reports(metrics, data.class_names, out_dir)
    return metrics
