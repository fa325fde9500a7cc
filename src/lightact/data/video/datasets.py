"""Video annotation formats and the clip dataset.

Readers turn each format into :class:`VideoRecord` lists and class names:

* ``list``: MMAction2 / PySlowFast lines ``relative/path.mp4 <label>``; a frame folder is
  ``dir <total_frames> <label>`` (frames ``img_00001.jpg``...). Label ``-1`` = unknown.
* ``kinetics``: the official CSV ``label,youtube_id,time_start,time_end,split[,is_cc]``; files are
  ``<youtube_id>_<start:06d>_<end:06d>.mp4`` directly under ``root`` or under ``root/<label>/``;
  the class index is the sorted order of the *training* labels.
* ``ssv2``: Something-Something V2 ``train.json``/``validation.json`` with ``labels.json``
  (template -> index as a string); videos ``<id>.webm``.
* ``diving48``: Diving48 V2 ``Diving48_V2_train.json``/``_test.json`` (``vid_name``, ``label``,
  ``start_frame``, ``end_frame``), videos ``<vid_name>.mp4``; ``Diving48_vocab.json`` names classes.

:class:`VideoClipDataset` samples frame indices, decodes only those frames (:mod:`.clips`), and
augments (:mod:`.transforms`). A video that cannot be decoded never stops training: it is reported
once with a warning, counted, and replaced by the next sample (training) or left out (evaluation).
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from lightact.data.batch import Batch
from lightact.data.video.clips import FRAME_TEMPLATE, read_clip, read_frame_folder
from lightact.data.video.reader import VideoDecodeError
from lightact.data.video.sampling import SamplingMode, clip_indices
from lightact.data.video.transforms import hflip, random_resized_crop, resize_short_side, spatial_crops

__all__ = [
    "VideoClipDataset",
    "VideoRecord",
    "load_records",
    "read_diving48",
    "read_kinetics_csv",
    "read_ssv2",
    "read_video_list",
]

VideoFormat = Literal["list", "kinetics", "ssv2", "diving48"]


@dataclass
class ClipBatch(Batch):
    """A :class:`Batch` that also names the videos of its samples that could not be decoded (left
    out of the batch), so the data module can count them in the main process."""

    skipped: list[str] = field(default_factory=list)


@dataclass
class VideoRecord:
    """One sample: a video file, a frame folder, or an in-memory clip (``data``, uint8 [T, H, W, 3])."""

    path: Path | None
    label: int
    num_frames: int | None = None  # known frame count (frame folders); None = ask the container
    start: int = 0  # first usable frame (Diving48's start_frame)
    end: int | None = None  # one past the last usable frame
    frame_dir: bool = False
    data: np.ndarray | None = None

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<in-memory clip>"


def _resolve(root: Path | None, rel: str) -> Path:
    path = Path(rel)
    return path if path.is_absolute() or root is None else root / path


def read_video_list(file: str | Path, root: str | Path | None = None) -> list[VideoRecord]:
    """``path label`` (video) or ``dir total_frames label`` (frame folder) lines; ``#`` comments."""
    file = Path(file)
    root = Path(root) if root is not None else file.parent
    records = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=2)
        try:
            if len(parts) == 3 and parts[1].lstrip("-").isdigit():
                path, total, label = _resolve(root, parts[0]), int(parts[1]), int(parts[2])
                if path.is_dir() or not path.suffix:
                    records.append(VideoRecord(path, label, num_frames=total, frame_dir=True))
                    continue
            rel, label_text = line.rsplit(maxsplit=1)
            path = _resolve(root, rel)
            records.append(VideoRecord(path, int(label_text), frame_dir=path.is_dir()))
        except ValueError:
            raise ValueError(
                f"{file}, line {number}: expected 'path label' or 'frame_dir total_frames label', "
                f"got {line!r}"
            ) from None
    if not records:
        raise ValueError(f"{file}: no video listed")
    return records


def read_kinetics_csv(
    file: str | Path, root: str | Path, classes: Sequence[str] | None = None
) -> tuple[list[VideoRecord], list[str]]:
    """Kinetics annotations; ``classes`` = the training CSV's sorted labels (None: this file's)."""
    file, root = Path(file), Path(root)
    with open(file, newline="") as f:
        reader = csv.DictReader(f)
        needed = {"label", "youtube_id", "time_start", "time_end"}
        if reader.fieldnames is None or not needed <= set(reader.fieldnames):
            raise ValueError(
                f"{file}: not a Kinetics CSV (needs columns {sorted(needed)}, got {reader.fieldnames})"
            )
        rows = list(reader)
    if classes is None:
        classes = sorted({r["label"] for r in rows})
    index = {name: i for i, name in enumerate(classes)}
    records = []
    for number, row in enumerate(rows, 2):
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except ValueError:
            raise ValueError(f"{file}, line {number}: bad time_start/time_end {row}") from None
        name = f"{row['youtube_id']}_{start:06d}_{end:06d}.mp4"
        label = index.get(row["label"], -1) if row["label"] else -1
        if row["label"] and label < 0:
            raise ValueError(f"{file}, line {number}: label {row['label']!r} is not a training class")
        path = root / row["label"] / name
        records.append(VideoRecord(path if path.exists() else root / name, label))
    return records, list(classes)


def _ssv2_classes(labels_file: Path) -> tuple[list[str], dict[str, int]]:
    labels = json.loads(labels_file.read_text())
    if not isinstance(labels, dict):
        raise ValueError(f"{labels_file}: expected a JSON object template -> class index")
    try:
        index = {k: int(v) for k, v in labels.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{labels_file}: class indices must be integers (as strings)") from None
    classes = [""] * len(index)
    for name, i in index.items():
        if not 0 <= i < len(classes) or classes[i]:
            raise ValueError(f"{labels_file}: class indices must be 0..{len(index) - 1}, each once")
        classes[i] = name
    return classes, index


def read_ssv2(
    file: str | Path, labels_file: str | Path, root: str | Path, suffix: str = ".webm"
) -> tuple[list[VideoRecord], list[str]]:
    """Something-Something V2: ``[{"id", "template", ...}]`` + ``labels.json``; test lists have no
    template (label -1)."""
    file, root = Path(file), Path(root)
    classes, index = _ssv2_classes(Path(labels_file))
    entries = json.loads(file.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{file}: expected a JSON list of videos")
    records = []
    for entry in entries:
        if "id" not in entry:
            raise ValueError(f"{file}: entry without 'id': {entry}")
        label = -1
        if "template" in entry:
            template = entry["template"].replace("[", "").replace("]", "")
            if template not in index:
                raise ValueError(
                    f"{file}: video {entry['id']}: template {template!r} is not in {labels_file}"
                )
            label = index[template]
        records.append(VideoRecord(root / f"{entry['id']}{suffix}", label))
    return records, classes


def read_diving48(
    file: str | Path, root: str | Path, vocab_file: str | Path | None = None, suffix: str = ".mp4"
) -> tuple[list[VideoRecord], list[str]]:
    """Diving48 V2 JSON; class names from the vocabulary (4-tuples joined by " / ") when given."""
    file, root = Path(file), Path(root)
    entries = json.loads(file.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{file}: expected a JSON list of videos")
    records = []
    for entry in entries:
        try:
            start, end = int(entry.get("start_frame", 0)), entry.get("end_frame")
            records.append(
                VideoRecord(
                    root / f"{entry['vid_name']}{suffix}",
                    int(entry["label"]),
                    start=start,
                    end=int(end) if end is not None else None,
                )
            )
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{file}: bad entry {entry} (needs vid_name, label)") from None
    if vocab_file is not None:
        vocab = json.loads(Path(vocab_file).read_text())
        classes = [" / ".join(map(str, v)) if isinstance(v, list) else str(v) for v in vocab]
    else:
        classes = [str(i) for i in range(max(r.label for r in records) + 1)]
    return records, classes


def load_records(
    fmt: VideoFormat,
    file: str | Path,
    root: str | Path | None,
    labels_file: str | Path | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[list[VideoRecord], list[str] | None]:
    """Records of one split in format ``fmt``, and class names when the format defines them."""
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"annotation file {file} does not exist")
    if fmt == "list":
        names = None
        if labels_file is not None:
            names = [n.strip() for n in Path(labels_file).read_text().splitlines() if n.strip()]
        return read_video_list(file, root), names
    if root is None:
        raise ValueError(f"data.root (the video folder) is needed for the {fmt} format")
    if fmt == "kinetics":
        return read_kinetics_csv(file, root, classes)
    if fmt == "ssv2":
        if labels_file is None:
            raise ValueError("the ssv2 format needs data.labels_file (labels.json)")
        return read_ssv2(file, labels_file, root)
    if fmt == "diving48":
        return read_diving48(file, root, labels_file)
    raise ValueError(f"unknown video annotation format {fmt!r}")


class VideoClipDataset(Dataset):
    """Clips of ``clip_len`` frames, augmented, as uint8 ``[T, 3, crop, crop]``.

    Items are addressed by ``(epoch, index)``; with ``views = num_clips x num_crops`` (test), item
    ``i`` is view ``i % views`` of sample ``i // views`` (clip ``view // num_crops``, crop
    ``view % num_crops``). Randomness is seeded by ``(seed, epoch, sample, view)``.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        clip_len: int,
        train: bool,
        sampling: SamplingMode = "uniform",
        frame_interval: int = 1,
        resize: int | None = None,
        crop: int = 64,
        crop_scale: tuple[float, float] = (0.25, 1.0),
        flip: bool = False,
        flip_swap: dict[int, int] | None = None,
        num_clips: int = 1,
        num_crops: int = 1,
        seed: int = 0,
        threads: int = 1,
        frame_template: str = FRAME_TEMPLATE,
        max_retries: int = 10,
    ) -> None:
        if not records:
            raise ValueError("the dataset is empty: no video in this split")
        self.records = list(records)
        self.clip_len, self.train, self.sampling = clip_len, train, sampling
        self.frame_interval, self.resize, self.crop, self.crop_scale = (
            frame_interval,
            resize,
            crop,
            crop_scale,
        )
        self.flip, self.flip_swap = flip, dict(flip_swap or {})
        self.num_clips, self.num_crops = (1, 1) if train else (num_clips, num_crops)
        self.views = self.num_clips * self.num_crops
        self.seed, self.threads, self.frame_template = seed, threads, frame_template
        self.max_retries = max_retries
        self.failed: set[str] = set()  # this process's undecodable videos, warned about once
        self._last: tuple[tuple[int, int], torch.Tensor] | None = None  # the crops of one test clip

    def __len__(self) -> int:
        return len(self.records) * self.views

    @property
    def num_samples(self) -> int:
        return len(self.records)

    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records])

    def sample_ids(self) -> list[str]:
        """Each sample's video (or frame folder) path; in-memory clips by their index."""
        return [str(r.path) if r.path is not None else f"clip_{i:05d}" for i, r in enumerate(self.records)]

    def _decode(self, record: VideoRecord, rng: np.random.Generator, clip_view: int) -> torch.Tensor:
        def indices(total: int) -> np.ndarray:
            end = min(record.end or total, total)
            start = min(record.start, max(end - 1, 0))
            chosen = clip_indices(
                self.sampling,
                max(end - start, 1),
                self.clip_len,
                self.train,
                rng,
                self.frame_interval,
                clip_view,
                self.num_clips,
            )
            return chosen + start

        if record.data is not None:
            frames = torch.from_numpy(record.data[indices(len(record.data))]).permute(0, 3, 1, 2)
            return resize_short_side(frames, self.resize) if self.resize else frames
        if record.frame_dir:
            clip, _ = read_frame_folder(
                record.path, indices, self.resize, record.num_frames, template=self.frame_template
            )
            return clip
        clip, _ = read_clip(record.path, indices, self.resize, threads=self.threads)
        return clip

    def _load(self, index: int, epoch: int, view: int) -> torch.Tensor:
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index, view])
        clip_view, crop_view = divmod(view, self.num_crops)
        if self.train:
            clip = self._decode(record, rng, 0)
            return random_resized_crop(clip, self.crop, rng, self.crop_scale)
        key = (index, clip_view)
        if self._last is None or self._last[0] != key:  # the crops of one clip share its decoding
            self._last = (key, self._decode(record, rng, clip_view))
        clip = self._last[1]
        if min(clip.shape[-2:]) < self.crop:
            clip = resize_short_side(clip, self.crop)
        return spatial_crops(clip, self.crop, self.num_crops)[crop_view]

    def _fail(self, record: VideoRecord, err: Exception) -> None:
        if record.name not in self.failed:
            self.failed.add(record.name)
            warnings.warn(f"skipping undecodable video {record.name}: {err}", stacklevel=3)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        epoch, item = key if isinstance(key, tuple) else (0, key)
        index, view = divmod(item, self.views)
        failed: list[str] = []
        for attempt in range(self.max_retries + 1 if self.train else 1):
            # In training a broken video is replaced by the next one, so batches keep their size.
            current = (index + attempt) % len(self.records)
            record = self.records[current]
            try:
                clip = self._load(current, epoch, view)
            except (VideoDecodeError, OSError, RuntimeError) as err:
                self._fail(record, err)
                failed.append(record.name)
                continue
            label = record.label
            if self.train and self.flip:
                rng = np.random.default_rng([self.seed, epoch, current, view, 1])
                if rng.random() < 0.5:
                    clip, label = hflip(clip, label, self.flip_swap)
            return {
                "clip": clip,
                "label": label,
                "index": index,
                "epoch": epoch,
                "failed": failed,
                "train": self.train,
            }
        # evaluation (or a run of broken videos): the item is left out, and counted by the collate
        return {
            "clip": None,
            "label": -1,
            "index": index,
            "epoch": epoch,
            "failed": failed,
            "train": self.train,
        }
