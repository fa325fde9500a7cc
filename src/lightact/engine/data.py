"""Lightning data module for skeleton experiments."""

from __future__ import annotations

from functools import cached_property

import lightning as L
import torch
from torch.utils.data import DataLoader

from lightact.config import DataConfig, EvalConfig
from lightact.data.skeleton.batching import collate_packed, make_collate_padded
from lightact.data.skeleton.dataset import SeededShardSampler, SkeletonDataset, load_split
from lightact.data.skeleton.layouts import Layout, get_layout
from lightact.data.skeleton.transforms import Compose, TemporalResample, build_transforms


def load_skeleton_source(cfg: DataConfig) -> dict:
    """The annotation data a config points at: the user's pickle, or the embedded synthetic set."""
    if cfg.path is not None:
        from lightact.data.skeleton.pickle_io import safe_load_pickle

        return safe_load_pickle(cfg.path)
    from lightact.data.synthetic.skeleton import generate_skeleton_dataset

    return generate_skeleton_dataset(
        samples_per_class=cfg.synth.samples_per_class,
        seed=cfg.synth.seed,
        val_fraction=cfg.synth.val_fraction,
    )


class SkeletonDataModule(L.LightningDataModule):
    def __init__(self, cfg: DataConfig, eval_cfg: EvalConfig, input_format: str, seed: int = 0) -> None:
        super().__init__()
        self.cfg, self.eval_cfg = cfg, eval_cfg
        self.representation = input_format
        self.seed = seed
        self.collate = collate_packed if input_format == "packed" else make_collate_padded(cfg.max_frames)

    @cached_property
    def layout(self) -> Layout:
        return get_layout(self.cfg.layout)

    @cached_property
    def source(self) -> dict:
        return load_skeleton_source(self.cfg)

    @cached_property
    def class_names(self) -> list[str]:
        labels = {a["label"] for a in self.source["annotations"]}
        names = self.source.get("classes")
        if names is None:
            names = [str(i) for i in range(max(labels) + 1)]
        if max(labels) >= len(names) or min(labels) < 0:
            raise ValueError(
                f"labels range over {min(labels)}..{max(labels)} but there are {len(names)} classes"
            )
        return list(names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return self.source["annotations"][0]["keypoint"].shape[-1] + (
            1 if "keypoint_score" in self.source["annotations"][0] else 0
        )

    def dataset(self, split: str, train: bool, views: int = 1) -> SkeletonDataset:
        annotations, _ = load_split(self.source, split)
        spec = self.cfg.train_transforms if train else self.cfg.test_transforms
        transform = build_transforms(spec, self.layout)
        if views > 1 or (not train and self.eval_cfg.clip_len):
            length = self.eval_cfg.clip_len or self.cfg.max_frames
            transform = Compose([transform, TemporalResample(length, random_offset=views > 1)])
        return SkeletonDataset(annotations, self.layout, self.representation, transform, self.seed, views)

    def _loader(self, dataset: SkeletonDataset, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = SeededShardSampler(len(dataset), shuffle, self.seed, rank, world, self.cfg.batch_size)
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
        return self._loader(self.dataset(self.cfg.train_split, train=True), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.cfg.val_split, train=False), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        split = self.cfg.test_split or self.cfg.val_split
        return self._loader(self.dataset(split, train=False, views=self.eval_cfg.num_clips), shuffle=False)
