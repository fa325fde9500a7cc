"""Lightning data module for long videos as cached features (``data.kind: longvideo``)."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from lightact.config import EvalConfig, LongVideoDataConfig
from lightact.data.batch import Batch
from lightact.data.longvideo.dataset import FeatureDataset, LongVideoRow, collate_features, read_lvu_csv
from lightact.data.longvideo.store import SETTINGS_FILE, FeatureStoreError
from lightact.engine.datamodule import ActionDataModule

__all__ = ["LongVideoDataModule", "prepare_synthetic_longvideo"]


def prepare_synthetic_longvideo(cfg: LongVideoDataConfig, progress: bool = False) -> Path:
    """Render the embedded videos and extract their features under ``cfg.synth.root`` (both steps
    skip what is already there); returns the root, holding ``features/``, ``train.csv``, ``val.csv``."""
    from lightact.data.synthetic.longvideo import SynthLongVideoSpec, generate_longvideo_dataset
    from lightact.features.extract import extract_features

    s = cfg.synth
    spec = SynthLongVideoSpec(
        videos_per_class=s.videos_per_class, duration_s=s.duration_s, seed=s.seed, val_fraction=s.val_fraction
    )
    generate_longvideo_dataset(s.root, spec, progress=progress)
    summary = extract_features(
        [s.root / "videos"],
        s.root / "features",
        cfg.extraction,
        rank=0,
        world_size=1,
        progress=progress,
    )
    if summary["failed"]:
        raise FeatureStoreError(f"feature extraction failed for {summary['failed'][:3]}")
    return s.root


class LongVideoDataModule(ActionDataModule):
    """LVU-style CSVs joined with a feature store, or the embedded synthetic set.

    Classification labels are class indices; regression labels are numbers (one target per video),
    whose training mean and standard deviation go to the model (``target_mean`` / ``target_std``)
    so its head starts at the right scale. A test sample is one whole video (one view).

    Without a store, :meth:`prepare_data` renders the embedded videos and extracts their features
    (``progress`` shows bars meanwhile); both steps skip what an earlier run left.
    """

    cfg: LongVideoDataConfig

    def __init__(
        self, cfg: LongVideoDataConfig, evaluation: EvalConfig, input_format: str, seed: int = 0, *,
        progress: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(cfg, evaluation, input_format, seed)
        if input_format != "features":
            raise ValueError(f"long-video data feeds models that take cached features, not {input_format!r}")
        self.progress = progress
        self._prepared = False

    def prepare_data(self) -> None:
        # Called before the model is built (its feature widths come from the store) and again by
        # the trainer: the second call has nothing to do.
        if self.cfg.store is None and not self._prepared:
            prepare_synthetic_longvideo(self.cfg, progress=self.progress)
        self._prepared = True

    @property
    def task(self) -> str:  # type: ignore[override]
        return self.cfg.task

    @property
    def regression_loss(self) -> str:
        """``mse`` or ``l1``, for :class:`lightact.engine.regression.RegressionModule`."""
        return self.cfg.regression_loss

    @cached_property
    def sources(self) -> dict[str, Any]:
        """Store folder and CSV per split (the embedded set's once :meth:`prepare_data` made it)."""
        cfg = self.cfg
        if cfg.store is None:
            if not self._prepared:
                raise FeatureStoreError("the embedded long-video set is read before prepare_data() made it")
            root = cfg.synth.root
            store, csvs = root / "features", {"train": root / "train.csv", "val": root / "val.csv"}
            classes: list[str] | Path | None = cfg.classes or root / "classes.txt"
        else:
            store, csvs, classes = cfg.store, {"train": cfg.train_csv, "val": cfg.val_csv}, cfg.classes
        csvs["test"] = cfg.test_csv or csvs["val"]
        if not Path(store).is_dir():
            raise FeatureStoreError(
                f"{store}: no such feature store (run `lightact extract-features ... --out {store}`)"
            )
        return {"store": Path(store), "csvs": csvs, "classes": classes}

    @cached_property
    def rows(self) -> dict[str, list[LongVideoRow]]:
        return {split: read_lvu_csv(path, self.task) for split, path in self.sources["csvs"].items()}

    @cached_property
    def class_names(self) -> list[str]:
        given = self.sources["classes"]
        if isinstance(given, Path | str):
            path = Path(given)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such class-name file")
            given = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if self.task == "regression":
            return list(given or ["target"])
        top = max(row.label for rows in self.rows.values() for row in rows)
        names = list(given) if given else [str(i) for i in range(int(top) + 1)]
        if top >= len(names):
            csv_file = next(
                self.sources["csvs"][s] for s, rows in self.rows.items() if any(r.label == top for r in rows)
            )
            raise ValueError(f"{csv_file}: class index {top} but only {len(names)} class names")
        return names

    @cached_property
    def _datasets(self) -> dict[tuple[str, bool], FeatureDataset]:
        return {}

    def dataset(self, split: str, train: bool, views: int = 1) -> FeatureDataset:
        key = (split, train)
        if key not in self._datasets:
            self._datasets[key] = FeatureDataset(
                self.rows[split],
                self.sources["store"],
                self.task,
                train=train,
                max_frames=self.cfg.max_frames if train else None,
                max_clips=self.cfg.max_clips if train else None,
                seed=self.seed,
                time_shift=self.cfg.time_shift if train else 0.0,
            )
        return self._datasets[key]

    def collate(self, items: list[dict]) -> Batch:
        return collate_features(items)

    @property
    def test_views(self) -> int:
        return 1  # a test sample is the whole video

    def model_arguments(self) -> dict[str, Any]:
        train = self.dataset("train", train=False)
        args: dict[str, Any] = {
            "num_classes": len(self.class_names),
            "frame_dim": train.frame_dim,
            "clip_dim": train.clip_dim,
            "task": self.task,
        }
        if self.task == "regression":
            targets = torch.tensor([float(r.label) for r in self.rows["train"]])
            args["target_mean"] = float(targets.mean())
            args["target_std"] = float(targets.std()) if len(targets) > 1 and targets.std() > 0 else 1.0
        return args

    def inference_meta(self) -> dict[str, Any]:
        """The extraction settings of the store: a new video must be encoded the same way."""
        settings_file = self.sources["store"] / SETTINGS_FILE
        settings = json.loads(settings_file.read_text()) if settings_file.is_file() else None
        if settings is None:
            settings = self.cfg.extraction.to_dict()
        return {"extraction": settings, "task": self.task}
