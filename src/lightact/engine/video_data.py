"""Lightning data module for video clips (``data.kind: video``)."""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any

import numpy as np
import torch

from lightact.config import EvalConfig, VideoDataConfig
from lightact.data.video.datasets import ClipBatch, VideoClipDataset, VideoRecord, load_records
from lightact.data.video.transforms import MixupCutmix, flip_label_map, normalize
from lightact.engine.datamodule import ActionDataModule
from lightact.errors import DataError


class VideoDataModule(ActionDataModule):
    """Train/val/test clip datasets from the config; test views = ``eval.num_clips x eval.num_crops``
    per video, averaged by ``sample_index``.

    Undecodable videos are counted: ``skipped_videos`` (a dict ``stage -> count``) and, in training,
    ``data/skipped_videos`` (running total) among the values the epoch log (epochs.csv) writes.
    ``label_smoothing`` goes into the soft targets of mixup and cutmix.
    """

    cfg: VideoDataConfig

    def __init__(
        self, cfg: VideoDataConfig, evaluation: EvalConfig, input_format: str, seed: int = 0, *,
        label_smoothing: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__(cfg, evaluation, input_format, seed)
        self.label_smoothing = label_smoothing
        if input_format != "clip":
            raise ValueError(f"video data feeds clip models; this model takes {input_format!r} input")
        self.skipped_videos: dict[str, int] = {}  # stage -> undecodable videos met so far

    @cached_property
    def _mix(self) -> MixupCutmix | None:
        if self.cfg.mixup_alpha <= 0 and self.cfg.cutmix_alpha <= 0:
            return None
        return MixupCutmix(
            self.num_classes,
            self.cfg.mixup_alpha,
            self.cfg.cutmix_alpha,
            self.cfg.mixup_prob,
            self.cfg.mixup_switch_prob,
            self.label_smoothing,
        )

    # --- annotations
    @cached_property
    def _synthetic(self):
        from lightact.data.synthetic.video import generate_video_dataset

        s = self.cfg.synth
        return generate_video_dataset(s.samples_per_class, s.seed, s.num_frames, s.size, s.val_fraction)

    def _file(self, split: str):
        file = {"train": self.cfg.train_file, "val": self.cfg.val_file}.get(split)
        if split == "test":
            file = self.cfg.test_file or self.cfg.val_file
        if file is None:
            raise ValueError(f"data.{split}_file is not set (needed for the {split} split)")
        return file

    @cached_property
    def _train_source(self) -> tuple[list[VideoRecord], list[str] | None]:
        return load_records(self.cfg.format, self._file("train"), self.cfg.root, self.cfg.labels_file)

    def records(self, split: str) -> list[VideoRecord]:
        if self.cfg.format == "synthetic":
            name = "train" if split == "train" else "val"
            return [VideoRecord(None, label, data=clip) for clip, label in self._synthetic.splits[name]]
        if split == "train":
            return self._train_source[0]
        records, _ = load_records(
            self.cfg.format, self._file(split), self.cfg.root, self.cfg.labels_file, self.class_names
        )
        return records

    def check(self) -> None:
        """Every split's list read, and its videos present: a split of which no video exists stops
        the run here; missing ones are named in a warning (they are skipped, as undecodable ones are)."""
        if self.cfg.format == "synthetic":
            return
        for split in ("train", "val", "test"):
            file = self._file(split)
            records = self.records(split)
            if not records:
                raise DataError(f"{file}: lists no video (the {split} split)")
            missing = [r for r in records if r.path is not None and not r.path.exists()]
            if len(missing) == len(records):
                raise DataError(
                    f"{file}: none of its {len(records)} videos exists (the {split} split), "
                    f"e.g. {missing[0].path}; is data.root right?"
                )
            if missing:
                warnings.warn(
                    f"{file}: {len(missing)} of {len(records)} videos do not exist and are skipped, e.g. "
                    + ", ".join(str(r.path) for r in missing[:3]),
                    stacklevel=2,
                )

    @cached_property
    def class_names(self) -> list[str]:
        if self.cfg.format == "synthetic":
            return list(self._synthetic.classes)
        records, names = self._train_source
        if not records:
            raise DataError(f"{self.cfg.train_file}: lists no video")
        if names is None:  # a plain list without a class-name file
            names = [str(i) for i in range(max(r.label for r in records) + 1)]
        labels = [r.label for r in records]
        if max(labels) >= len(names) or min(labels) < -1:
            raise ValueError(
                f"labels in {self.cfg.train_file} range over {min(labels)}..{max(labels)} "
                f"but there are {len(names)} classes"
            )
        return list(names)

    @cached_property
    def flip_swap(self) -> dict[int, int]:
        return flip_label_map(self.class_names) if self.cfg.flip_swap == "auto" else {}

    # --- the contract
    @property
    def test_views(self) -> int:
        return self.eval_cfg.num_clips * self.eval_cfg.num_crops

    def model_arguments(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "num_frames": self.cfg.num_frames, "img_size": self.cfg.crop}

    def dataset(self, split: str, train: bool, views: int = 1) -> VideoClipDataset:
        num_clips, num_crops = (self.eval_cfg.num_clips, self.eval_cfg.num_crops) if views > 1 else (1, 1)
        resize = self.cfg.resize
        return VideoClipDataset(
            self.records(split),
            clip_len=self.cfg.num_frames,
            train=train,
            sampling=self.cfg.sampling,
            frame_interval=self.cfg.frame_interval,
            resize=resize,
            crop=self.cfg.crop,
            crop_scale=tuple(self.cfg.crop_scale),
            flip=self.cfg.flip and train,
            flip_swap=self.flip_swap,
            num_clips=num_clips,
            num_crops=num_crops,
            seed=self.seed,
            threads=self.cfg.decode_threads,
            frame_template=self.cfg.frame_template,
        )

    def collate(self, items: list[dict]) -> ClipBatch:
        failed = [name for item in items for name in item["failed"]]
        kept = [item for item in items if item["clip"] is not None]
        if kept:
            clips = normalize(torch.stack([item["clip"] for item in kept]), self.cfg.mean, self.cfg.std)
        else:  # every video of this batch was undecodable
            size = self.cfg.crop
            clips = torch.zeros(0, 3, self.cfg.num_frames, size, size)
        labels = torch.tensor([item["label"] for item in kept], dtype=torch.long)
        index = torch.tensor([item["index"] for item in kept], dtype=torch.long)
        training = bool(kept) and kept[0].get("train", False)
        if self._mix is not None and training and len(kept) > 1:
            rng = np.random.default_rng([self.seed, kept[0]["epoch"], kept[0]["index"], 7])
            clips, labels = self._mix(clips, labels, rng)
        return ClipBatch(inputs=(clips,), labels=labels, sample_index=index, skipped=failed)

    def on_before_batch_transfer(self, batch: ClipBatch, dataloader_idx: int) -> ClipBatch:
        skipped = batch.skipped
        trainer = self.trainer
        if skipped and trainer is not None:
            stage = "train" if trainer.training else "val" if trainer.validating else "test"
            self.skipped_videos[stage] = self.skipped_videos.get(stage, 0) + len(skipped)
            if trainer.training:
                # Shows up in the epoch log (epochs.csv) next to the losses.
                key = "data/skipped_videos"  # running total
                total = trainer.callback_metrics.get(key, torch.tensor(0.0))
                trainer.callback_metrics[key] = total + len(skipped)
        return batch

    def inference_meta(self) -> dict[str, Any]:
        return {
            "num_frames": self.cfg.num_frames,
            "sampling": self.cfg.sampling,
            "frame_interval": self.cfg.frame_interval,
            "resize": self.cfg.resize,
            "crop": self.cfg.crop,
            "mean": list(self.cfg.mean),
            "std": list(self.cfg.std),
        }

    def teardown(self, stage: str) -> None:
        if self.skipped_videos:
            counts = ", ".join(f"{k}: {v}" for k, v in self.skipped_videos.items())
            warnings.warn(f"undecodable videos were skipped ({counts})", stacklevel=1)
