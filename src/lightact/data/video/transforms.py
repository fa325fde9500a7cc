"""Clip transforms on uint8 tensors ``[T, 3, H, W]`` (one clip) or ``[B, T, 3, H, W]`` (a batch).

Geometry is drawn once per clip and applied to all its frames (a crop that jumps between frames
would be motion that is not in the video). Resizing works on uint8 directly (torchvision's
antialiased kernels), so frames stay 1 byte per value until :func:`normalize` turns a whole batch
into the model's float ``[B, 3, T, H, W]``. Randomness comes from the caller's
``numpy.random.Generator`` so augmentation is reproducible per sample and epoch.

Horizontal flips change the meaning of left/right classes (Something-Something's "pushing something
from left to right"): :func:`flip_label_map` derives the swap from the class names, and
:func:`hflip` applies it. :class:`MixupCutmix` wraps timm's ``Mixup`` (mixup, cutmix and label
smoothing into soft targets) for clip batches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MixupCutmix",
    "center_crop",
    "flip_label_map",
    "hflip",
    "normalize",
    "random_resized_crop",
    "resize_short_side",
    "spatial_crops",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Words whose meaning a horizontal flip exchanges.
_MIRROR_WORDS = {
    "left": "right",
    "right": "left",
    "clockwise": "anticlockwise",
    "anticlockwise": "clockwise",
    "counterclockwise": "clockwise",
    "leftward": "rightward",
    "rightward": "leftward",
    "leftwards": "rightwards",
    "rightwards": "leftwards",
}


def _check(clip: Tensor) -> None:
    if clip.dtype != torch.uint8 or clip.dim() not in (4, 5) or clip.shape[-3] != 3:
        raise ValueError(
            f"expected uint8 clips [T, 3, H, W] or [B, T, 3, H, W], got {clip.dtype} {tuple(clip.shape)}"
        )


def resize_short_side(clip: Tensor, size: int) -> Tensor:
    """Scale so that the shorter side is ``size`` (aspect kept), antialiased, uint8 in and out."""
    _check(clip)
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    scale = size / min(h, w)
    new = [max(size, round(h * scale)), max(size, round(w * scale))]
    return TF.resize(clip, new, antialias=True)


def random_resized_crop(
    clip: Tensor,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """Inception-style crop (area fraction ``scale``, aspect ``ratio``) resized to ``size`` x ``size``.

    The same box is used for every frame of the clip (and every clip of a 5D batch).
    """
    _check(clip)
    h, w = clip.shape[-2:]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            break
    else:  # fall back to the largest centred crop of an allowed aspect
        ch, cw = h, w
        if w / h > ratio[1]:
            cw = round(h * ratio[1])
        elif w / h < ratio[0]:
            ch = round(w / ratio[0])
        top, left = (h - ch) // 2, (w - cw) // 2
    return TF.resized_crop(clip, top, left, ch, cw, [size, size], antialias=True)


def center_crop(clip: Tensor, size: int) -> Tensor:
    _check(clip)
    return TF.center_crop(clip, [size, size])


def spatial_crops(clip: Tensor, size: int, num_crops: int) -> list[Tensor]:
    """``num_crops`` square crops evenly spaced along the longer side (3: the usual left/centre/right
    or top/centre/bottom test crops; 1: the centre crop)."""
    _check(clip)
    h, w = clip.shape[-2:]
    if min(h, w) < size:
        raise ValueError(f"cannot take {size}px crops from {h}x{w} frames: resize first")
    if num_crops == 1:
        return [center_crop(clip, size)]
    crops = []
    for k in range(num_crops):
        f = k / (num_crops - 1)
        top = round((h - size) * (f if h > w else 0.5))
        left = round((w - size) * (f if w >= h else 0.5))
        crops.append(clip[..., top : top + size, left : left + size])
    return crops


def flip_label_map(class_names: Sequence[str]) -> dict[int, int]:
    """Class index -> the class its mirror image belongs to, found by exchanging left/right (and
    clockwise/anticlockwise) in the names; classes without a mirrored partner are absent."""
    index = {name.strip().lower(): i for i, name in enumerate(class_names)}

    def mirror(name: str) -> str:
        return re.sub(r"[A-Za-z]+", lambda m: _MIRROR_WORDS.get(m.group(0).lower(), m.group(0).lower()), name)

    swap = {}
    for i, name in enumerate(class_names):
        mirrored = mirror(name.strip().lower())
        j = index.get(mirrored)
        if j is not None and j != i:
            swap[i] = j
    return swap


def hflip(clip: Tensor, label: int, swap: dict[int, int] | None = None) -> tuple[Tensor, int]:
    """Mirror the clip left-right and map the label through ``swap`` (see :func:`flip_label_map`)."""
    _check(clip)
    return clip.flip(-1), (swap or {}).get(label, label)


def normalize(batch: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 ``[B, T, 3, H, W]`` -> float ``[B, 3, T, H, W]``, ``(x / 255 - mean) / std``."""
    _check(batch)
    if batch.dim() == 4:
        batch = batch.unsqueeze(0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1) * 255
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1) * 255
    return (batch.permute(0, 2, 1, 3, 4).float() - m) / s


class MixupCutmix:
    """timm's ``Mixup`` for clips ``[B, 3, T, H, W]``: one mixing weight and one cutmix box per batch,
    the box the same in every frame; targets become soft ``[B, C]`` with label smoothing.

    timm cuts boxes out of the last two dimensions of a 4D batch, so the clip's channels and frames
    are merged for the call. An odd batch mixes its first ``B - 1`` clips (timm needs pairs); the last
    one gets a smoothed one-hot target. ``rng`` seeds timm's draws (it uses NumPy's global generator),
    so mixing is reproducible per batch; the global state is restored afterwards.
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
    ) -> None:
        from timm.data import Mixup

        self.num_classes, self.label_smoothing = num_classes, label_smoothing
        self.mixup = Mixup(
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            prob=prob,
            switch_prob=switch_prob,
            label_smoothing=label_smoothing,
            num_classes=num_classes,
        )

    def __call__(self, clips: Tensor, labels: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        b, c, t, h, w = clips.shape
        even = b - b % 2
        off = self.label_smoothing / self.num_classes
        soft = torch.full((b, self.num_classes), off)
        soft.scatter_(1, labels.view(-1, 1), 1 - self.label_smoothing + off)
        if even == 0:
            return clips, soft
        state = np.random.get_state()
        np.random.seed(int(rng.integers(0, 2**32 - 1)))
        try:
            flat = clips[:even].reshape(even, c * t, h, w).contiguous()
            mixed, targets = self.mixup(flat, labels[:even])
        finally:
            np.random.set_state(state)
        clips = torch.cat([mixed.reshape(even, c, t, h, w), clips[even:]])
        soft[:even] = targets.to(soft.dtype)
        return clips, soft
