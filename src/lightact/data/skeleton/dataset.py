"""Skeleton datasets over the standard annotation pickle schema (MMAction2/pyskl)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lightact.data.skeleton.features import clip_features, with_scores
from lightact.data.skeleton.layouts import Layout
from lightact.data.skeleton.pickle_io import safe_load_pickle
from lightact.errors import UnknownNameError, UsageError

Transform = Callable[[dict[str, Any], np.random.Generator], dict[str, Any]]


class SplitError(UsageError):
    """A config names a split the annotation file does not have."""


def load_split(data: dict | str | Path, split: str) -> tuple[list[dict], list[str] | None]:
    """The annotations of one split (all of them when the file has no split lists) and the class
    names when the file carries them."""
    if not isinstance(data, dict):
        data = safe_load_pickle(data)
    annotations = data.get("annotations")
    if not isinstance(annotations, list):
        raise ValueError("annotation data has no 'annotations' list")
    splits = data.get("split") or {}
    if split not in splits:
        if splits:
            raise UnknownNameError(f"split {split!r} not found; the file has: {', '.join(sorted(splits))}")
        return annotations, data.get("classes")
    wanted = set(splits[split])
    chosen = [a for a in annotations if a["frame_dir"] in wanted]
    unknown = len(wanted) - len({a["frame_dir"] for a in chosen})
    if unknown:
        ghosts = sorted(wanted - {a["frame_dir"] for a in chosen})
        warnings.warn(
            f"split {split!r} lists {unknown} id(s) without an annotation, left out: "
            + ", ".join(map(str, ghosts[:5]))
            + (" ..." if unknown > 5 else ""),
            stacklevel=2,
        )
    return chosen, data.get("classes")


def hold_out(
    annotations: Sequence[dict], fraction: float, seed: int, group: str | None = None
) -> tuple[list[dict], list[dict]]:
    """Split ``annotations`` into (kept, held out) with about ``fraction`` of them held out.

    Without ``group`` the hold-out is stratified: ``round(fraction * n)`` samples of each class (at
    least one of a class with two or more). With ``group`` (an annotation key such as ``subject``)
    whole groups are held out, ``round(fraction * groups)`` of them (at least one), so validation sees
    only people training does not, as a cross-subject test does. Seeded: the same seed, the same split.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    if group is not None:
        missing = [a["frame_dir"] for a in annotations if group not in a]
        if missing:
            raise ValueError(f"data.val_group {group!r}: sample {missing[0]!r} has no such field")
        values = sorted({str(a[group]) for a in annotations})
        if len(values) < 2:
            raise ValueError(f"data.val_group {group!r}: only one value ({values}), nothing to hold out")
        count = min(len(values) - 1, max(1, round(fraction * len(values))))
        held = {values[i] for i in rng.permutation(len(values))[:count]}
        is_held = [str(a[group]) in held for a in annotations]
    else:
        is_held = [False] * len(annotations)
        by_label: dict[int, list[int]] = {}
        for i, a in enumerate(annotations):
            by_label.setdefault(int(a["label"]), []).append(i)
        for label in sorted(by_label):
            members = by_label[label]
            count = min(len(members) - 1, max(1, round(fraction * len(members))))
            for i in rng.permutation(members)[:count]:
                is_held[i] = True
    kept = [a for a, h in zip(annotations, is_held, strict=True) if not h]
    held_out = [a for a, h in zip(annotations, is_held, strict=True) if h]
    return kept, held_out


class SkeletonDataset(Dataset):
    """Turns annotations into model inputs.

    ``representation="packed"`` gives per-frame joint/bone/motion features ``[F, V, 3C]`` with the
    persons' seen frames concatenated along time (STAR); ``"padded"`` gives raw coordinates
    ``[C, T, V, M]`` (GCN baselines). Items are addressed by ``(epoch, index)`` so augmentation is a
    pure function of the seed, the epoch and the sample, whatever the worker or a resume.
    """

    def __init__(
        self,
        annotations: Sequence[dict],
        layout: Layout,
        representation: str,
        transform: Transform | None = None,
        seed: int = 0,
        views: int = 1,
    ) -> None:
        if representation not in ("packed", "padded"):
            raise ValueError(f"unknown representation {representation!r}")
        self.layout = layout
        self.representation = representation
        self.transform = transform
        self.seed = seed
        self.views = views
        self.parents = layout.parents
        self.annotations = self._usable(annotations)

    def _usable(self, annotations: Sequence[dict]) -> list[dict]:
        if not annotations:
            raise ValueError("the dataset is empty: no annotation in this split")
        keep, empty = [], []
        for ann in annotations:
            if ann["keypoint"].ndim != 4:
                raise ValueError(
                    f"sample {ann['frame_dir']!r}: keypoint has shape {list(ann['keypoint'].shape)}, "
                    "not [persons, frames, joints, coordinates]"
                )
            joints = ann["keypoint"].shape[2]
            if joints != self.layout.num_joints:
                raise ValueError(
                    f"sample {ann['frame_dir']!r} has {joints} joints but layout {self.layout.name!r} "
                    f"has {self.layout.num_joints}: set data.layout to the data's joint layout"
                )
            if not np.isfinite(ann["keypoint"]).all():
                raise ValueError(f"sample {ann['frame_dir']!r} has NaN or infinite coordinates")
            (keep if np.abs(ann["keypoint"]).sum() > 0 else empty).append(ann)
        if empty:
            warnings.warn(
                f"skipping {len(empty)} sample(s) in which no person is ever seen: "
                + ", ".join(a["frame_dir"] for a in empty[:5]),
                stacklevel=3,
            )
        if not keep:
            raise ValueError("the dataset is empty: no sample has a visible person")
        return keep

    def __len__(self) -> int:
        return len(self.annotations) * self.views

    @property
    def num_samples(self) -> int:
        return len(self.annotations)

    def labels(self) -> np.ndarray:
        return np.array([a["label"] for a in self.annotations])

    def sample_ids(self) -> list[str]:
        """Each sample's name (its annotation's ``frame_dir``), in index order."""
        return [str(a["frame_dir"]) for a in self.annotations]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, item = key if isinstance(key, tuple) else (0, key)
        index, view = divmod(item, self.views)
        ann = self.annotations[index]
        sample = {
            "keypoint": ann["keypoint"].astype(np.float32),
            "keypoint_score": ann.get("keypoint_score"),
            "label": int(ann["label"]),
        }
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, epoch, index, view])
            sample = self.transform(sample, rng)
        keypoint = with_scores(sample["keypoint"], sample.get("keypoint_score"))
        return {"frames": self._represent(keypoint), "label": sample["label"], "index": index}

    def _represent(self, keypoint: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(clip_features(keypoint, self.parents, self.representation))
