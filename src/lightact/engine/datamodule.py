"""The data-module contract every modality follows, and the lookup from ``data.kind`` to its module.

A modality's data module turns its section of the experiment config into datasets and batches
(:class:`lightact.data.batch.Batch`); what else it needs from the experiment (the evaluation
views, the seed, a value from another section) are constructor arguments, which
:func:`build_datamodule` alone reads from the config.

Datasets are indexed by ``(epoch, index)`` pairs from :class:`SeededShardSampler`, so random
augmentation can be seeded by ``(seed, epoch, index)``: a resumed run then sees exactly the batches
an uninterrupted one would, on any number of processes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from lightact.config import DataConfigBase, EvalConfig
from lightact.data.batch import Batch
from lightact.data.sharding import SeededShardSampler

if TYPE_CHECKING:
    from lightact.config import ExperimentConfig

# data.kind -> "module:class", imported on first use so one modality's dependencies (PyAV, ...) are
# not needed by another's.
DATA_MODULES = {
    "skeleton": "lightact.engine.skeleton_data:SkeletonDataModule",
    "video": "lightact.engine.video_data:VideoDataModule",
    "image": "lightact.engine.image_data:ImageDataModule",
    "longvideo": "lightact.engine.longvideo_data:LongVideoDataModule",
}


class ActionDataModule(L.LightningDataModule):
    """Base for every modality.

    ``cfg`` is the modality's data section, ``evaluation`` says how test samples are viewed,
    ``input_format`` is the model's (how to collate), ``seed`` seeds sampling and augmentation.
    Subclasses provide ``class_names``, ``model_arguments()``, ``dataset(split, train, views)``
    (a dataset indexed by ``(epoch, index)`` with a ``num_samples`` attribute: distinct samples,
    each yielding ``views`` items in test mode), ``collate(items) -> Batch`` and
    ``inference_meta()``; ``task`` is "classification" or "regression".
    """

    task = "classification"
    has_validation = True  # False: the run trains without a validation loop

    def check_splits(self) -> None:
        """Raise, before training starts, when the config names data that is not there."""

    def __init__(self, cfg: DataConfigBase, evaluation: EvalConfig, input_format: str, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.eval_cfg = evaluation
        self.seed = seed
        self.input_format = input_format

    @property
    def class_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def model_arguments(self) -> dict[str, Any]:
        """Constructor arguments the data implies (classes, input size, channels, ...); a model
        takes the ones its spec declares (:meth:`lightact.models.registry.ModelEntry.data_arguments`)."""
        raise NotImplementedError

    def dataset(self, split: str, train: bool, views: int = 1) -> Dataset:
        raise NotImplementedError

    def collate(self, items: list[Any]) -> Batch:
        raise NotImplementedError

    def inference_meta(self) -> dict[str, Any]:
        """What a predictor needs to prepare new inputs like the training data (JSON-serialisable)."""
        return {}

    def check(self) -> None:
        """Find what is wrong with the data before a run starts (after :meth:`prepare_data`): a
        subclass reads every split as training will and raises :class:`~lightact.errors.DataError`
        (or ``UsageError`` for a config key) naming the file and the sample."""

    @property
    def test_views(self) -> int:
        return self.eval_cfg.num_clips

    def loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        size = len(dataset)
        if size == 0:
            raise ValueError("the dataset is empty: no usable samples in this split")
        sampler = SeededShardSampler(size, shuffle, self.seed, rank, world, self.cfg.batch_size)
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
            # A private generator keeps loader start-up from drawing on the global RNG, which
            # would make a resumed run's dropout differ from an uninterrupted one.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("train", train=True), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("val", train=False), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("test", train=False, views=self.test_views), shuffle=False)


def build_datamodule(cfg: ExperimentConfig, input_format: str) -> ActionDataModule:
    """The data module for ``cfg.data.kind``, its arguments read from the experiment config."""
    kind = cfg.data.kind
    module_name, _, class_name = DATA_MODULES[kind].partition(":")
    extra: dict[str, Any] = {}
    if kind == "video":
        extra["label_smoothing"] = cfg.optim.label_smoothing  # mixup and cutmix targets carry it
    elif kind == "image":
        cached = cfg.distill is not None and cfg.distill.cache == "cached"
        extra["cache_views"] = cfg.distill.cache_views if cached else 0
    elif kind == "longvideo":
        extra["progress"] = cfg.trainer.progress_bar  # rendering and extracting the embedded set
    data_module = getattr(importlib.import_module(module_name), class_name)
    return data_module(cfg.data, cfg.eval, input_format, seed=cfg.seed, **extra)
