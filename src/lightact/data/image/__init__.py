"""Still images: Stanford 40 Actions, class-per-folder trees, the embedded synthetic set.

The names are imported on first use: reading files (:mod:`~lightact.data.image.sources`) needs only
PIL and numpy, so a torch-free deployment can read images; datasets and transforms need torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "dataset": ("FixedViews", "ImageBatch", "ImageDataset", "collate_images"),
    "sources": (
        "ImageReadError",
        "ImageSamples",
        "decode_image",
        "drop_unreadable",
        "read_image_folder",
        "read_stanford40",
        "stanford40_label",
        "synthetic_samples",
    ),
    "transforms": ("ImageTransformSpec", "eval_view", "train_transform"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"lightact.data.image.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lightact.data.image' has no attribute {name!r}")


__all__ = sorted(_LAZY)
