"""The feature store: one safetensors file per video, written atomically.

``STORE/<video stem>.safetensors`` holds

=================  ==============  =======================================================
tensor             shape / dtype   meaning
=================  ==============  =======================================================
``frame_features`` ``[Nf, Df]`` f32 static stream: the frame encoder on frames sampled at ``fps``
``frame_times``    ``[Nf]`` f64    each sampled frame's time in seconds
``clip_features``  ``[Nc, Dc]`` f32 temporal stream: the clip encoder on short clips
``clip_times``     ``[Nc, 2]`` f64  each clip's first and last frame time in seconds
=================  ==============  =======================================================

and, as JSON in the metadata key ``lightact_features``, the source video (path, fps, frames,
duration) and the extraction settings (encoders, weights, sampling). ``STORE/extraction.json`` holds
the settings of the whole store: a later run with other settings is refused rather than mixing
features of two encoders in one store.

A file is written to a temporary name and renamed into place, so an interrupted extraction never
leaves a half-written file under a real name; a file that is nevertheless truncated or corrupt (a
copy that failed, a full disk) is reported by name when read (:class:`FeatureStoreError`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lightact.utils import atomic_write

__all__ = [
    "META_KEY",
    "SETTINGS_FILE",
    "FeatureStoreError",
    "VideoFeatures",
    "feature_path",
    "read_features",
    "read_header",
    "video_key",
    "write_features",
]

META_KEY = "lightact_features"
SETTINGS_FILE = "extraction.json"
FORMAT_VERSION = 1
_TENSORS = ("frame_features", "frame_times", "clip_features", "clip_times")


class FeatureStoreError(ValueError):
    """A feature file is missing, truncated, corrupt or inconsistent; the message names it."""


@dataclass
class VideoFeatures:
    """The cached features of one video (see the module docstring for the layout)."""

    frame_features: torch.Tensor
    frame_times: torch.Tensor
    clip_features: torch.Tensor
    clip_times: torch.Tensor
    meta: dict[str, Any]

    @property
    def num_frames(self) -> int:
        return int(self.frame_features.shape[0])

    @property
    def num_clips(self) -> int:
        return int(self.clip_features.shape[0])

    @property
    def clip_centres(self) -> torch.Tensor:
        return self.clip_times.mean(dim=1) if self.num_clips else self.clip_times.new_zeros(0)

    def check(self, source: str | Path) -> None:
        """Shapes and values that make sense, else a :class:`FeatureStoreError` naming ``source``."""
        f, c = self.frame_features, self.clip_features
        problems = []
        if f.dim() != 2 or self.frame_times.shape != (f.shape[0],):
            problems.append(f"frame_features {list(f.shape)} / frame_times {list(self.frame_times.shape)}")
        if c.dim() != 2 or self.clip_times.shape != (c.shape[0], 2):
            problems.append(f"clip_features {list(c.shape)} / clip_times {list(self.clip_times.shape)}")
        for name in _TENSORS:
            value = getattr(self, name)
            if value.is_floating_point() and not torch.isfinite(value).all():
                problems.append(f"{name} has NaN or infinite values")
        if problems:
            raise FeatureStoreError(f"{source}: inconsistent feature file: {'; '.join(problems)}")


def video_key(video: str | Path) -> str:
    """The store name of a video: its file name without the extension (LVU's YouTube ids)."""
    return Path(video).stem


def feature_path(store: str | Path, video: str | Path) -> Path:
    """Where ``video``'s features live in ``store``; a ``.safetensors`` path is taken as it is."""
    video = Path(video)
    if video.suffix == ".safetensors":
        return video if video.is_absolute() or video.exists() else Path(store) / video
    return Path(store) / f"{video_key(video)}.safetensors"


def write_features(path: str | Path, features: VideoFeatures) -> None:
    """Atomically write one video's features (temporary file, then rename)."""
    features.check(path)
    tensors = {
        "frame_features": features.frame_features.float().contiguous(),
        "frame_times": features.frame_times.double().contiguous(),
        "clip_features": features.clip_features.float().contiguous(),
        "clip_times": features.clip_times.double().contiguous(),
    }
    meta = {"format_version": FORMAT_VERSION, **features.meta}
    atomic_write(
        Path(path),
        lambda tmp: save_file(tensors, tmp, metadata={META_KEY: json.dumps(meta, sort_keys=True)}),
    )


def read_header(path: str | Path) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The metadata and tensor shapes of a feature file, without reading the tensors."""
    path = Path(path)
    if not path.is_file():
        raise FeatureStoreError(f"{path}: no such feature file (was the video extracted into this store?)")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise FeatureStoreError(
            f"{path}: not a readable feature file, truncated or corrupt ({err})"
        ) from None
    if raw is None:
        raise FeatureStoreError(f"{path}: a safetensors file, but not one of lightact's feature files")
    missing = [k for k in _TENSORS if k not in shapes]
    if missing:
        raise FeatureStoreError(f"{path}: feature file lacks {missing}")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise FeatureStoreError(f"{path}: unreadable metadata ({err})") from None
    return meta, shapes


def read_features(path: str | Path) -> VideoFeatures:
    """Read one video's features; a truncated, corrupt or foreign file raises :class:`FeatureStoreError`."""
    path = Path(path)
    meta, _ = read_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in _TENSORS}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise FeatureStoreError(
            f"{path}: not a readable feature file, truncated or corrupt ({err})"
        ) from None
    features = VideoFeatures(meta=meta, **tensors)
    features.check(path)
    return features


def settings_digest(settings: dict[str, Any]) -> str:
    """A stable text form of extraction settings, for comparing two runs."""
    return json.dumps(settings, sort_keys=True)


def write_settings(store: Path, settings: dict[str, Any]) -> None:
    """Record the store's extraction settings, or refuse when the store holds other settings."""
    path = store / SETTINGS_FILE
    if path.is_file():
        existing = json.loads(path.read_text())
        if existing != json.loads(settings_digest(settings)):  # as JSON reads them back: 4 == 4.0
            changed = sorted(k for k in {*existing, *settings} if existing.get(k) != settings.get(k))
            raise FeatureStoreError(
                f"{store} holds features extracted with other settings ({', '.join(changed)} differ: "
                f"{ {k: existing.get(k) for k in changed} } there, { {k: settings.get(k) for k in changed} } "
                "now); use another --out or the same settings"
            )
        return
    atomic_write(
        path, lambda tmp: Path(tmp).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    )
