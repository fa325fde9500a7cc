"""Image transforms (torchvision v2), seeded per sample so runs are repeatable and resumable.

Training: random resized crop, horizontal flip, optional colour jitter, then float + normalise.
Evaluation: resize the short side to ``img_size / crop_pct``, then a crop of ``img_size``; test
view ``v`` is crop ``v // 2`` of (centre, top-left, top-right, bottom-left, bottom-right),
mirrored when ``v`` is odd, so ``num_crops=2`` is centre + flipped centre and 10 is ten-crop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_TEST_VIEWS = 10


@dataclass(frozen=True)
class ImageTransformSpec:
    """What :func:`train_transform` and :func:`eval_view` need; also stored in checkpoints."""

    img_size: int = 64
    crop_scale: tuple[float, float] = (0.35, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    color_jitter: float = 0.0
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def _normalise(spec: ImageTransformSpec) -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(spec.mean), list(spec.std))]


def train_transform(spec: ImageTransformSpec) -> Callable[[Tensor], Tensor]:
    """uint8 ``[3, H, W]`` -> float ``[3, img_size, img_size]``; draws on torch's global RNG."""
    steps = [
        v2.RandomResizedCrop(spec.img_size, scale=spec.crop_scale, ratio=spec.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(spec.hflip),
    ]
    if spec.color_jitter > 0:
        j = spec.color_jitter
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    return v2.Compose(steps + _normalise(spec))


def eval_view(image: Tensor, spec: ImageTransformSpec, view: int = 0) -> Tensor:
    """Deterministic test view ``view`` (see the module docstring) of a uint8 ``[3, H, W]`` image."""
    if not 0 <= view < MAX_TEST_VIEWS:
        raise ValueError(f"test view {view} out of range: at most {MAX_TEST_VIEWS} views (ten-crop)")
    resize = max(spec.img_size, int(round(spec.img_size / spec.crop_pct)))
    image = TF.resize(image, resize, antialias=True)
    height, width = image.shape[-2:]
    size = spec.img_size
    corners = {
        0: ((height - size) // 2, (width - size) // 2),
        1: (0, 0),
        2: (0, width - size),
        3: (height - size, 0),
        4: (height - size, width - size),
    }
    top, left = corners[view // 2]
    image = TF.crop(image, top, left, size, size)
    if view % 2 == 1:
        image = TF.horizontal_flip(image)
    return v2.Compose(_normalise(spec))(image)


def sample_seed(*parts: int) -> int:
    """A 63-bit seed from integers such as ``(seed, epoch, index)``; unrelated tuples do not collide."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0]) >> 1


def seeded(transform: Callable[[Tensor], Tensor], image: Tensor, seed: int) -> Tensor:
    """Run a random ``transform`` under its own seed, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(image)
