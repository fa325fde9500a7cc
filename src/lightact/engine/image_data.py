"""Lightning data module for still images (``data.kind: image``)."""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any

from lightact.config import EvalConfig, ImageDataConfig
from lightact.data.image.dataset import FixedViews, ImageBatch, ImageDataset, collate_images
from lightact.data.image.sources import (
    ImageSamples,
    drop_unreadable,
    read_image_folder,
    read_stanford40,
    synthetic_samples,
)
from lightact.data.image.transforms import MAX_TEST_VIEWS, ImageTransformSpec
from lightact.engine.datamodule import ActionDataModule


def spec_from_config(cfg: ImageDataConfig) -> ImageTransformSpec:
    return ImageTransformSpec(
        img_size=cfg.img_size,
        crop_scale=tuple(cfg.crop_scale),
        hflip=cfg.hflip,
        color_jitter=cfg.color_jitter,
        crop_pct=cfg.crop_pct,
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
    )


class ImageDataModule(ActionDataModule):
    """Stanford 40 (official split), a class-per-folder tree, or the embedded synthetic set.

    With ``cache_views > 0`` (distillation with ``distill.cache: cached``) the training set serves
    that many fixed augmented views per image (see :class:`ImageDataset`), and :meth:`teacher_views`
    lists them all for the teacher-logit cache.
    """

    cfg: ImageDataConfig

    def __init__(
        self, cfg: ImageDataConfig, evaluation: EvalConfig, input_format: str, seed: int = 0, *,
        cache_views: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(cfg, evaluation, input_format, seed)
        self.spec = spec_from_config(cfg)
        self._samples: dict[str, ImageSamples] = {}
        self.cache_views = cache_views

    def samples(self, split: str) -> ImageSamples:
        """The images of a named split (``train``, ``test``, ...), read once."""
        if split not in self._samples:
            cfg = self.cfg
            fmt = cfg.resolved_format
            if fmt == "synthetic":
                s = cfg.synth
                samples = synthetic_samples(split, s.samples_per_class, s.seed, s.size, s.test_fraction)
            elif fmt == "stanford40":
                samples = read_stanford40(cfg.path, split)
            else:
                samples = read_image_folder(cfg.path, split, cfg.holdout_fraction)
            if cfg.on_corrupt == "skip":
                samples = drop_unreadable(samples, cfg.img_size)
            self._samples[split] = samples
        return self._samples[split]

    def _split_name(self, split: str) -> str:
        return {"train": self.cfg.train_split, "val": self.cfg.val_split, "test": self.cfg.test_split}.get(
            split, split
        )

    @cached_property
    def class_names(self) -> list[str]:
        return list(self.samples(self.cfg.train_split).classes)

    def model_arguments(self) -> dict[str, Any]:
        # Models built for an input size (ViT, Swin, MViT) take img_size; ConvNeXt, PVT-v2 do not.
        return {"num_classes": self.num_classes, "img_size": self.cfg.img_size}

    @property
    def test_views(self) -> int:
        views = self.eval_cfg.num_crops
        if views > MAX_TEST_VIEWS:
            raise ValueError(f"eval.num_crops={views}: images have at most {MAX_TEST_VIEWS} test crops")
        return views

    def dataset(self, split: str, train: bool, views: int = 1) -> ImageDataset:
        samples = self.samples(self._split_name(split))
        if samples.classes != self.class_names:
            raise ValueError(f"split {split!r} has other classes than the training split")
        return ImageDataset(samples, self.spec, train, self.seed, views, self.cache_views if train else 0)

    def collate(self, items: list) -> ImageBatch:
        return collate_images(items)

    def teacher_views(self) -> FixedViews:
        """Every fixed augmented training view, in (sample, view) order, for the logit cache."""
        if not self.cache_views:
            raise ValueError("teacher_views() needs distill.cache: cached")
        return FixedViews(self.dataset("train", train=True), self.cache_views)

    def cache_fingerprint(self) -> dict[str, Any]:
        """What the cached teacher logits depend on, besides the teacher itself."""
        samples = self.samples(self.cfg.train_split)
        keys = hashlib.sha256(json.dumps([samples.keys, samples.labels.tolist()]).encode()).hexdigest()
        return {
            "samples": keys,
            "num_samples": len(samples),
            "views": self.cache_views,
            "seed": self.seed,
            "transform": json.dumps(self.spec.__dict__, sort_keys=True, default=list),
        }

    def inference_meta(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "img_size": spec.img_size,
            "crop_pct": spec.crop_pct,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "num_crops": self.test_views,
        }
