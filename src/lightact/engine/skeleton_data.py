"""Lightning data module for skeleton experiments."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from lightact.config import EvalConfig, SkeletonDataConfig
from lightact.data.batch import Batch
from lightact.data.skeleton.batching import collate_packed, make_collate_padded
from lightact.data.skeleton.dataset import SkeletonDataset, load_split
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
        for split in ("train", "val", "test"):
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

    def inference_meta(self) -> dict[str, Any]:
        """The test pipeline a predictor rebuilds: the test transforms, ``eval.clip_len``
        resampling and the ``max_frames`` a padded model takes."""
        return {
            "test_transforms": list(self.cfg.test_transforms),
            "clip_len": self.eval_cfg.clip_len,
            "max_frames": self.cfg.max_frames,
        }

    def dataset(self, split: str, train: bool, views: int = 1) -> SkeletonDataset:
        annotations, _ = load_split(self.source, self.split_name(split))
        spec = self.cfg.train_transforms if train else self.cfg.test_transforms
        transform = build_transforms(spec, self.layout)
        if views > 1 or (not train and self.eval_cfg.clip_len):
            length = self.eval_cfg.clip_len or self.cfg.max_frames
            transform = Compose([transform, TemporalResample(length, random_offset=views > 1)])
        return SkeletonDataset(annotations, self.layout, self.input_format, transform, self.seed, views)
