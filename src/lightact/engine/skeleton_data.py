"""Lightning data module for skeleton experiments."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import Any

import numpy as np

from lightact.config import EvalConfig, SkeletonDataConfig
from lightact.data.batch import Batch
from lightact.data.skeleton.batching import collate_packed, make_collate_padded
from lightact.data.skeleton.dataset import SkeletonDataset, SplitError, hold_out, load_split
from lightact.data.skeleton.layouts import Layout, get_layout
from lightact.data.skeleton.transforms import Compose, TemporalResample, build_transforms
from lightact.data.skeleton.validate import validate_annotations
from lightact.engine.datamodule import ActionDataModule
from lightact.errors import DataError, UsageError


def load_skeleton_source(cfg: SkeletonDataConfig) -> dict:
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


class SkeletonDataModule(ActionDataModule):
    cfg: SkeletonDataConfig

    def __init__(
        self, cfg: SkeletonDataConfig, evaluation: EvalConfig, input_format: str, seed: int = 0
    ) -> None:
        super().__init__(cfg, evaluation, input_format, seed)
        self._collate = (
            collate_packed if input_format == "packed" else make_collate_padded(self.cfg.max_frames)
        )

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
    def in_channels(self) -> int:
        return self.source["annotations"][0]["keypoint"].shape[-1] + (
            1 if "keypoint_score" in self.source["annotations"][0] else 0
        )

    def check(self) -> None:
        """The file against the schema (as ``lightact data validate`` checks it), the layout and
        transforms the config names, and every split read as training reads it."""
        where = str(self.cfg.path) if self.cfg.path is not None else "the embedded dataset"
        try:
            layout = self.layout
        except (KeyError, ValueError, OSError) as err:
            raise UsageError(f"data.layout: {err}") from None
        # Unlabelled samples (-1, as pose extraction writes them) are fine to predict on, not to
        # train on; split ids without an annotation are left out with a warning (load_split).
        errors = [
            p
            for p in validate_annotations(self.source)
            if p.kind != "split_unknown_id" and (p.severity == "error" or p.kind == "unlabelled")
        ]
        if errors:
            more = (
                f" (and {len(errors) - 1} more; lightact data validate lists them)" if len(errors) > 1 else ""
            )
            raise DataError(f"{where}: {errors[0].message}{more}")
        for key in ("train_transforms", "test_transforms"):
            try:
                build_transforms(getattr(self.cfg, key), layout)
            except (KeyError, ValueError, TypeError) as err:
                raise UsageError(
                    f"data.{key}: {str(err.args[0]) if isinstance(err, KeyError) else err}"
                ) from None
        for split in ("train", "val", "test") if self.has_validation else ("train", "test"):
            try:
                self.dataset(split, train=split == "train")
            except KeyError as err:
                raise UsageError(f"{where}: data.{split}_split: {err.args[0]}") from None
            except ValueError as err:
                raise DataError(f"{where}: the {split} split ({self.split_name(split)!r}): {err}") from None

    def split_name(self, split: str) -> str:
        """The file's name for the ``train``, ``val`` or ``test`` split."""
        return {"train": self.cfg.train_split, "val": self.cfg.val_split}.get(
            split, self.cfg.test_split or self.cfg.val_split
        )

    def model_arguments(self) -> dict[str, Any]:
        # Packed models take joint, bone and motion features side by side.
        per_joint = self.in_channels * (3 if self.input_format == "packed" else 1)
        return {"num_classes": self.num_classes, "layout": self.layout, "in_channels": per_joint}

    def collate(self, items: list[dict]) -> Batch:
        return self._collate(items)

    @property
    def has_validation(self) -> bool:
        return self.cfg.val_fraction > 0 or self.cfg.val_split is not None

    def check_splits(self) -> None:
        """Fail before training, in one line, when the config names a split the file lacks."""
        if not isinstance(self.source, dict):
            return  # not an annotation file at all: check() says so, naming the file
        splits = self.source.get("split") or {}
        if not splits:
            return  # a file without split lists: every split is the whole file
        wanted = {"data.train_split": self.cfg.train_split}
        if self.cfg.val_fraction == 0 and self.cfg.val_split is not None:
            wanted["data.val_split"] = self.cfg.val_split
        wanted["data.test_split"] = self.cfg.test_split or self.cfg.val_split
        for key, name in wanted.items():
            if name is None:
                raise SplitError(f"{key} is not set and data.val_split is null: name the test split")
            if name not in splits:
                raise SplitError(
                    f"{key} {name!r} is not a split of {self.cfg.path or 'the data'} (its splits: "
                    f"{', '.join(sorted(splits))}); name one of them"
                    + (
                        ", or validate on data.val_fraction=0.2 of the training split, or "
                        "data.val_split=null for no validation"
                        if key == "data.val_split"
                        else ""
                    )
                )

    def _annotations(self, split: str) -> list[dict]:
        cfg = self.cfg
        if split in ("train", "val") and cfg.val_fraction > 0:
            annotations, _ = load_split(self.source, cfg.train_split)
            kept, held_out = hold_out(annotations, cfg.val_fraction, self.seed, cfg.val_group)
            return kept if split == "train" else held_out
        name = {"train": cfg.train_split, "val": cfg.val_split}.get(split, cfg.test_split or cfg.val_split)
        return load_split(self.source, name)[0]

    def inference_meta(self) -> dict[str, Any]:
        """The test pipeline a predictor rebuilds: the test transforms, ``eval.clip_len``
        resampling and the ``max_frames`` a padded model takes; and what the data was: the most
        persons seen in one sample (a model of one-person samples classifies each person of a
        video on their own) and its frame rate (the annotations' ``fps``, ``None`` when they do not
        say: a predictor then takes NTU's and the embedded set's 30 fps)."""
        annotations = self.source["annotations"]
        persons = max(
            (
                int((np.abs(a["keypoint"]).reshape(len(a["keypoint"]), -1).sum(1) > 0).sum())
                for a in annotations
            ),
            default=0,
        )
        rates = [float(a["fps"]) for a in annotations if a.get("fps")]
        return {
            "test_transforms": list(self.cfg.test_transforms),
            "clip_len": self.eval_cfg.clip_len,
            "max_frames": self.cfg.max_frames,
            "persons": persons,
            "fps": float(np.median(rates)) if rates else None,
        }

    def dataset(self, split: str, train: bool, views: int = 1) -> SkeletonDataset:
        annotations = self._annotations(split)
        spec = self.cfg.train_transforms if train else self.cfg.test_transforms
        transform = build_transforms(spec, self.layout)
        steps = transform.transforms
        resamples = any(isinstance(t, TemporalResample) for t in steps)
        if views > 1 and resamples:
            # Each view its own uniform sampling of the clip (pyskl's test-mode UniformSampleFrames
            # with num_clips): the test transforms' middle-frame resampling would make every view
            # the same frames, and averaging them would gain nothing.
            transform = Compose(
                [replace(t, random_offset=True) if isinstance(t, TemporalResample) else t for t in steps]
            )
        if (views > 1 and not resamples) or (not train and self.eval_cfg.clip_len):
            # Random test views need a length to resample to: eval.clip_len, else data.max_frames,
            # else the 300 frames padded models used to get.
            length = self.eval_cfg.clip_len or self.cfg.max_frames or 300
            transform = Compose([transform, TemporalResample(length, random_offset=views > 1)])
        return SkeletonDataset(annotations, self.layout, self.input_format, transform, self.seed, views)
