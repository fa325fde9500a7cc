"""The feature-store dataset: LVU-style CSV rows joined with cached features, packed batches.

CSV (LVU style)
---------------
One row per video, ``video_path,label`` with a header line::

    video_path,label
    videos/abc123.mp4,3          # classification: a class index
    videos/def456.mp4,4.21       # regression (like ratio, view count): a real number

The features of ``videos/abc123.mp4`` are looked up in the store by file stem
(``STORE/abc123.safetensors``); a path ending in ``.safetensors`` names the feature file itself
(relative to the store). Errors name the CSV file and line. Converting the LVU release: its task
lists pair a YouTube id with a label; write one ``<id>.mp4,<label>`` row per line (the videos only
need to be extracted under those names), with the class index of the label for classification tasks.

Batches are packed, without padding: every video's frame features one after another, its lengths
in ``frame_lengths`` (likewise for clips): the input STAN's packed forward takes (``models/stan.py``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lightact.data.batch import Batch
from lightact.data.longvideo.store import FeatureStoreError, feature_path, read_features, read_header

__all__ = ["FeatureDataset", "LongVideoRow", "collate_features", "read_lvu_csv", "subsample"]


class LongVideoCSVError(ValueError):
    """A malformed row in a long-video CSV; the message names the file and line."""


@dataclass(frozen=True)
class LongVideoRow:
    video: str
    label: int | float


def read_lvu_csv(path: str | Path, task: str = "classification") -> list[LongVideoRow]:
    """Rows of an LVU-style ``video_path,label`` CSV (header required)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    rows: list[LongVideoRow] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["video_path", "label"]:
            raise LongVideoCSVError(f"{path}:1: the header must be 'video_path,label', got {header}")
        for line, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 2 or not row[0].strip():
                raise LongVideoCSVError(f"{path}:{line}: expected 'video_path,label', got {row}")
            text = row[1].strip()
            try:
                label: int | float = int(text) if task == "classification" else float(text)
            except ValueError:
                kind = "an integer class index" if task == "classification" else "a number"
                raise LongVideoCSVError(f"{path}:{line}: label {text!r} is not {kind}") from None
            if task == "classification" and label < 0:
                raise LongVideoCSVError(f"{path}:{line}: class index {label} is negative")
            if task == "regression" and label != label:  # NaN
                raise LongVideoCSVError(f"{path}:{line}: label is NaN")
            rows.append(LongVideoRow(row[0].strip(), label))
    if not rows:
        raise LongVideoCSVError(f"{path}: no rows")
    return rows


def subsample(length: int, limit: int | None, generator: torch.Generator | None) -> torch.Tensor:
    """Indices of at most ``limit`` of ``length`` tokens, evenly spread over the whole video (so
    long-range structure survives); a random offset within each stride when ``generator`` is given."""
    if limit is None or length <= limit:
        return torch.arange(length)
    stride = length / limit
    offset = torch.rand(limit, generator=generator) if generator is not None else torch.full((limit,), 0.5)
    return ((torch.arange(limit) + offset) * stride).long().clamp_(max=length - 1)


class FeatureDataset(Dataset):
    """One item per CSV row: the video's cached features and its label.

    Every feature file is checked when the dataset is built (exists, reads, same feature sizes), so
    a missing or broken file is reported, by name, before training starts. ``max_frames`` /
    ``max_clips`` cap the tokens per stream (evenly spread; randomly offset when ``train``). With
    ``train`` and ``time_shift`` every video's times are shifted by a random ``[0, time_shift)``
    seconds, so that a model learns from when things happen relative to each other, not from
    absolute times it could memorise.
    """

    def __init__(
        self,
        rows: list[LongVideoRow],
        store: str | Path,
        task: str = "classification",
        train: bool = False,
        max_frames: int | None = None,
        max_clips: int | None = None,
        seed: int = 0,
        time_shift: float = 0.0,
    ) -> None:
        self.rows, self.store, self.task, self.train = rows, Path(store), task, train
        self.max_frames, self.max_clips = max_frames, max_clips
        self.time_shift = time_shift
        self.paths = [feature_path(self.store, r.video) for r in rows]
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise FeatureStoreError(
                f"{len(missing)} of {len(self.paths)} videos have no features in {self.store} "
                f"(first: {', '.join(missing[:3])}); run `lightact extract-features` on them"
            )
        dims = set()
        self.lengths: list[tuple[int, int]] = []
        for path in self.paths:
            _, shapes = read_header(path)
            dims.add((shapes["frame_features"][1], shapes["clip_features"][1]))
            if len(dims) > 1:
                raise FeatureStoreError(
                    f"{path}: feature sizes {dims.pop()} differ from the rest of the store's {dims.pop()}: "
                    "were the videos extracted with different encoders?"
                )
            self.lengths.append((shapes["frame_features"][0], shapes["clip_features"][0]))
        self.frame_dim, self.clip_dim = dims.pop()
        self.num_samples = len(rows)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        # Loaders index by (epoch, index) (lightact.data.sharding.SeededShardSampler): the random
        # subsampling is seeded by (seed, epoch, index), so a resumed run sees the same batches.
        epoch, index = key if isinstance(key, tuple) else (0, key)
        features = read_features(self.paths[index])
        generator = None
        if self.train:
            state = np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0]
            generator = torch.Generator().manual_seed(int(state))
        f = subsample(features.num_frames, self.max_frames, generator)
        c = subsample(features.num_clips, self.max_clips, generator)
        shift = 0.0
        if generator is not None and self.time_shift > 0:
            shift = float(torch.rand((), generator=generator)) * self.time_shift
        return {
            "frames": features.frame_features[f],
            "frame_times": features.frame_times[f].float() + shift,
            "clips": features.clip_features[c],
            "clip_times": features.clip_centres[c].float() + shift,
            "label": self.rows[index].label,
            "index": index,
        }


def collate_features(items: list[dict]) -> Batch:
    """Pack a list of dataset items into a :class:`Batch` for the long-video models."""
    labels = [item["label"] for item in items]
    is_class = all(isinstance(label, int) for label in labels)
    return Batch(
        inputs=(
            torch.cat([item["frames"] for item in items]),
            torch.cat([item["frame_times"] for item in items]),
            torch.tensor([len(item["frames"]) for item in items], dtype=torch.long),
            torch.cat([item["clips"] for item in items]),
            torch.cat([item["clip_times"] for item in items]),
            torch.tensor([len(item["clips"]) for item in items], dtype=torch.long),
        ),
        labels=torch.tensor(labels, dtype=torch.long if is_class else torch.float32),
        sample_index=torch.tensor([item["index"] for item in items], dtype=torch.long),
    )


def features_to_inputs(
    frames: torch.Tensor, frame_times: torch.Tensor, clips: torch.Tensor, clip_times: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """One video's features as the model's packed inputs (a batch of one)."""
    return (
        frames,
        frame_times.float(),
        torch.tensor([len(frames)], dtype=torch.long),
        clips,
        clip_times.float(),
        torch.tensor([len(clips)], dtype=torch.long),
    )
