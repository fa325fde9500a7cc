"""Training and evaluation entry points behind ``lightact train`` and ``lightact eval``."""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from torch import nn

from lightact.config import CONFIG_FILE_NAME, ExperimentConfig, dump_config
from lightact.data.skeleton.layouts import Layout
from lightact.data.video.reader import MissingDependencyError
from lightact.engine.callbacks import EpochCSVLogger, ProgressBar, RNGState
from lightact.engine.checkpoint import AtomicCheckpointIO, load_model, save_weights
from lightact.engine.datamodule import ActionDataModule, build_datamodule
from lightact.engine.module import ActionModule, ClassificationModule
from lightact.engine.reports import classification_metrics, write_reports, write_sample_predictions
from lightact.errors import UsageError, check_writable_dir
from lightact.models.registry import create_model, model_entry
from lightact.models.weights import WEIGHTS_FILE, load_pretrained
from lightact.utils import available_cores, check_unlocked, exclusive_lock, progress_bar

LAST_CHECKPOINT_NAME = "last"
LAST_CHECKPOINT = f"checkpoints/{LAST_CHECKPOINT_NAME}.ckpt"
LOCK_FILE = ".lock"  # held by the run that uses the work directory

# Warnings that say nothing about the user's run, hidden unless trainer.verbose: on CPU there is
# nothing to pin and a small dataset needs no extra loader workers; Lightning's copy of torch's
# pytree code touches a class recent torch deprecates (Lightning's to change, not the user's).
HARMLESS_WARNINGS = (
    r".*does not have many workers.*",
    r".*pin_memory.*",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


# Resuming, the checkpoint directory holds the run's own checkpoints.
RESUME_WARNINGS = (r"Checkpoint directory .* exists and is not empty.*",)


@contextmanager
def quiet_lightning(verbose: bool = False, resume: bool = False) -> Iterator[None]:
    """Without ``verbose``: Lightning's info lines (accelerator found, tips to install its cloud
    products, "estimating stepping batches") and :data:`HARMLESS_WARNINGS` (and, with ``resume``,
    :data:`RESUME_WARNINGS`) are not shown. Its warnings about the run itself still are."""
    if verbose:
        yield
        return
    names = ("lightning.pytorch", "lightning.fabric")
    levels = {name: logging.getLogger(name).level for name in names}
    with warnings.catch_warnings():
        for pattern in HARMLESS_WARNINGS + (RESUME_WARNINGS if resume else ()):
            warnings.filterwarnings("ignore", message=pattern)
        for name in names:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def build_loggers(cfg: ExperimentConfig, work_dir: Path) -> list[Logger]:
    """Lightning's loggers named by ``trainer.loggers``; mlflow and wandb are extras, and a missing
    one is a :class:`MissingDependencyError` naming the install."""
    missing = [n for n in cfg.trainer.loggers if n in ("mlflow", "wandb") and not importlib.util.find_spec(n)]
    if missing:
        name = missing[0]
        raise MissingDependencyError(
            f"trainer.loggers names {name}, which is not installed: pip install 'lightact[{name}]'"
        )
    loggers: list[Logger] = []
    for name in cfg.trainer.loggers:
        if name == "csv":  # a new version_N per (re)start: a resumed run keeps the earlier steps
            loggers.append(CSVLogger(work_dir, name="csv"))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(work_dir, name="tb", version=""))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            # $MLFLOW_TRACKING_URI, when set, wins over the local store in the work dir.
            loggers.append(MLFlowLogger(experiment_name=cfg.name, save_dir=str(work_dir / "mlruns")))
        elif name == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            project = os.environ.get("WANDB_PROJECT", "lightact")
            loggers.append(WandbLogger(name=cfg.name, project=project, save_dir=str(work_dir)))
    return loggers


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
    monitor: tuple[str, str] | None = ClassificationModule.monitor,
) -> L.Trainer:
    """The Lightning trainer; ``monitor`` None: no validation loop, only the last checkpoint kept."""
    t = cfg.trainer
    ddp = t.strategy.startswith("ddp")
    bars = [ProgressBar(leave=True)] if t.progress_bar else []
    averaging = [EMAWeightAveraging(decay=t.ema_decay)] if t.ema_decay is not None else []
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
        logger=build_loggers(cfg, work_dir),
        callbacks=[
            *bars,
            RNGState(),
            EpochCSVLogger(work_dir / "epochs.csv"),
            *callbacks,
            *averaging,
            *_checkpoints(work_dir / "checkpoints", monitor),
        ],
        limit_val_batches=None if monitor else 0,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=t.progress_bar,
        # Lightning's table counts FLOPs only with an example input, which lightact's models take
        # in several forms: it would print "0". train() prints the parameter count instead.
        enable_model_summary=t.verbose,
        use_distributed_sampler=False,  # SeededShardSampler shards by rank itself
        # torch's SyncBatchNorm runs on GPUs only; on CPU each process normalises its own batch.
        sync_batchnorm=ddp and t.accelerator != "cpu" and torch.cuda.is_available(),
        deterministic=False,
        log_every_n_steps=1,
    )


def _checkpoints(folder: Path, monitor: tuple[str, str] | None) -> list[ModelCheckpoint]:
    """``last.ckpt`` after every epoch (what ``--resume`` continues from), and with validation the
    best epoch's. Two callbacks, because Lightning's ``save_last`` writes the last checkpoint only
    in a step where it also saved a top-k one: with no validation (top 0) never before the end of
    training, with validation only on epochs that improved."""
    last = ModelCheckpoint(
        dirpath=folder, filename=LAST_CHECKPOINT_NAME, save_top_k=1, enable_version_counter=False
    )
    if monitor is None:
        return [last]
    best = ModelCheckpoint(dirpath=folder, filename="best-{epoch:03d}", monitor=monitor[0], mode=monitor[1])
    return [last, best]


def intra_op_threads(setting: int | str | None) -> int | None:
    """The torch thread count ``trainer.num_threads`` asks for (None: leave torch's default).

    "auto" is half the CPUs this process may use, at least one: where cores run two hardware
    threads that is one per physical core, and it leaves room for loader workers and other
    processes, whose competition for the CPUs makes each of torch's parallel regions wait for its
    slowest thread (on a busy 2-CPU machine training ran several times slower with 2 threads).
    """
    if setting == "auto":
        return max(1, available_cores() // 2)
    return setting


def train(
    cfg: ExperimentConfig,
    resume: bool = False,
    callbacks: list[L.Callback] = (),
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Train, then evaluate on the test split; returns the work directory. ``echo`` receives a
    one-line summary of the run (model size, device, precision, loggers) before training."""
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
            f"{work_dir} already holds a run: pass --resume to continue it, or another work dir "
            "(--set work_dir=DIR)"
        )
    threads = intra_op_threads(cfg.trainer.num_threads)
    if threads:
        torch.set_num_threads(threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    entry = model_entry(cfg.model.name)
    if entry.modality != cfg.data.kind:
        raise UsageError(
            f"model {cfg.model.name} takes {entry.modality} input but data.kind is {cfg.data.kind!r}"
        )
    data = build_datamodule(cfg, entry.input_format)
    data.check_splits()
    data.prepare_data()  # the model's arguments may come from the data (classes, feature widths)
    data.check()
    kwargs = model_arguments(cfg, data)
    model = create_model(cfg.model.name, **kwargs)
    if cfg.model.weights is not None and not resume:
        report = load_pretrained(
            model,
            cfg.model.weights,
            strict=cfg.model.weights_strict,
            entry=cfg.model.weights_entry,
            model_name=cfg.model.name,
        )
        if report.problems:  # only when model.weights_strict is false: loaded anyway
            warnings.warn(
                f"{report.file.path}: loaded with model.weights_strict false; "
                f"{'; '.join(report.problem_lines())}",
                stacklevel=2,
            )
    if cfg.trainer.compile:
        backend = "inductor" if cfg.trainer.compile is True else cfg.trainer.compile
        model.compile(backend=backend, dynamic=True)  # in place: the state dict keeps its keys
    module = build_module(cfg, model, data)
    with quiet_lightning(cfg.trainer.verbose, resume):
        trainer = build_trainer(cfg, work_dir, callbacks, module.monitor if data.has_validation else None)
    # One run per work directory at a time: rank 0 holds its lock for the whole run.
    lock = (
        exclusive_lock(work_dir / LOCK_FILE, f"work_dir {work_dir}")
        if trainer.is_global_zero
        else nullcontext()
    )
    with lock:
        if trainer.is_global_zero:
            work_dir.mkdir(parents=True, exist_ok=True)
            dump_config(cfg, work_dir / CONFIG_FILE_NAME)
            # The resolved config, every default spelled out, is the run's hyper-parameters.
            for logger in trainer.loggers:
                logger.log_hyperparams(cfg.model_dump(mode="json"))
            if echo is not None:
                echo(_run_summary(cfg, trainer, model, work_dir))
        with quiet_lightning(cfg.trainer.verbose, resume):
            trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None)
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


def _run_summary(cfg: ExperimentConfig, trainer: L.Trainer, model: nn.Module, work_dir: Path) -> str:
    params = sum(p.numel() for p in model.parameters())
    device = trainer.strategy.root_device.type
    loggers = ", ".join(cfg.trainer.loggers) or "none"
    return (
        f"{cfg.model.name}: {params / 1e6:.2f} M parameters; {trainer.world_size} x {device}, "
        f"precision {trainer.precision}; logs ({loggers}) in {work_dir}"
    )


@torch.no_grad()
def predict_probabilities(
    model: nn.Module, loader, num_samples: int, softmax: bool = True, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the outputs (class probabilities, or raw values for regression) averaged over
    its test views, and the targets."""
    outputs, targets, _ = _view_means(model, loader, num_samples, softmax, progress)
    return outputs, targets


def _view_means(
    model: nn.Module, loader, num_samples: int, softmax: bool, progress: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`predict_probabilities` and the indices of the samples it kept."""
    out_sum, targets, views = None, None, torch.zeros(num_samples)
    with progress_bar(progress, unit="batches") as bar:
        task = bar.add_task("evaluating", total=len(loader))
        for batch in loader:
            out = model(*batch.inputs).float()
            out = out.softmax(-1) if softmax else out
            if out_sum is None:
                out_sum = torch.zeros(num_samples, *out.shape[1:])
                targets = torch.zeros(num_samples, *batch.labels.shape[1:], dtype=batch.labels.dtype)
            out_sum.index_add_(0, batch.sample_index, out)
            views.index_add_(0, batch.sample_index, torch.ones(len(batch)))
            targets[batch.sample_index] = batch.labels
            bar.advance(task)
    if out_sum is None:
        raise ValueError("the test split is empty")
    seen = views > 0
    if not seen.all():
        # Every view of these samples failed to load (an undecodable video): they are left out of
        # the metrics rather than scored as all-zero predictions.
        warnings.warn(
            f"{int((~seen).sum())} test sample(s) had no usable view and are left out", stacklevel=3
        )
    means = out_sum[seen] / views[seen].view(-1, *[1] * (out_sum.ndim - 1))
    return means, targets[seen], seen.nonzero().flatten()


def evaluate(
    cfg: ExperimentConfig,
    checkpoint: str | Path,
    data: ActionDataModule | None = None,
    out_dir: Path | None = None,
    progress: bool = False,
    dump: Path | None = None,
) -> dict[str, Any]:
    """Top-1/top-5/mean-class accuracy (or regression errors) on the test split, test views
    averaged, written as JSON, per-class CSV and a confusion-matrix PNG beside the checkpoint;
    ``dump`` also writes one CSV row per test sample (:func:`write_sample_predictions`)."""
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
    outputs, targets, kept = _view_means(model, loader, loader.dataset.num_samples, not regression, progress)
    if regression:
        from lightact.engine.regression import regression_metrics, write_regression_reports

        metrics = regression_metrics(outputs, targets, data.class_names)
        metrics["num_clips"] = data.test_views
        write_regression_reports(metrics, out_dir)
    else:
        metrics = classification_metrics(outputs, targets, data.class_names)
        metrics["num_clips"] = data.test_views
        write_reports(metrics, data.class_names, out_dir)
    if dump is not None:
        ids = loader.dataset.sample_ids()
        write_sample_predictions(
            dump, [ids[i] for i in kept.tolist()], outputs, targets, data.class_names, data.task
        )
    return metrics
