"""Predict actions in still images with a trained image model (``lightact predict WORK_DIR IMAGE``).

The image is prepared as the evaluation did it (resize to ``img_size / crop_pct``, crop, normalise;
with ``num_crops > 1`` the test crops' probabilities are averaged), using the preprocessing stored
in the checkpoint, so a prediction matches ``lightact eval`` on the same file.

With the ONNX Runtime backend nothing imports torch: the same views are cut with PIL and numpy
(:func:`eval_views_numpy`; PIL's antialiased bilinear resize, which torchvision's ``antialias=True``
follows, so pixels differ from torchvision's by rounding at most: measured in the tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lightact.data.image.sources import IMAGE_SUFFIXES, ImageReadError, read_rgb
from lightact.inference.base import Predictor
from lightact.inference.files import InputFiles
from lightact.inference.results import Prediction, WindowPrediction, top_classes
from lightact.inference.runtime import OnnxModel

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ImageRecognizer", "eval_views_numpy"]

_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, as ImageTransformSpec's


def eval_views_numpy(
    image: np.ndarray, img_size: int, crop_pct: float, mean, std, views: int = 1
) -> np.ndarray:
    """The first ``views`` test views (centre crop, its flip, then the corners and theirs, as
    :func:`lightact.data.image.transforms.eval_view`) of a uint8 ``[H, W, 3]`` image, normalised,
    as float32 ``[views, 3, img_size, img_size]``, with PIL and numpy only."""
    from PIL import Image

    resize = max(img_size, int(round(img_size / crop_pct)))
    height, width = image.shape[:2]
    if height <= width:  # the shorter side to ``resize``, the longer one truncated like torchvision's
        size = (int(resize * width / height), resize)
    else:
        size = (resize, int(resize * height / width))
    resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    h, w = resized.shape[:2]
    s = img_size
    corners = [((h - s) // 2, (w - s) // 2), (0, 0), (0, w - s), (h - s, 0), (h - s, w - s)]
    out = []
    for view in range(views):
        top, left = corners[view // 2]
        crop = resized[top : top + s, left : left + s]
        if view % 2 == 1:
            crop = crop[:, ::-1]
        out.append(crop.transpose(2, 0, 1))
    x = np.stack(out).astype(np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]


class ImageRecognizer(Predictor):
    """A trained image classifier with its preprocessing; :meth:`predict` takes a file or pixels."""

    modality = "image"
    # One image is one frame: no timeline to draw.
    inputs = InputFiles(frozenset(IMAGE_SUFFIXES), "image", errors=(ImageReadError,), timeline=False)

    def __init__(
        self, model: nn.Module | OnnxModel, meta: dict[str, Any], device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(model, meta, device)
        data = meta.get("data") or {}
        self.img_size = int(data.get("img_size", 224))
        self.crop_pct = float(data.get("crop_pct", 0.875))
        self.mean = tuple(data.get("mean", _MEAN))
        self.std = tuple(data.get("std", _STD))
        self.num_crops = int(data.get("num_crops", 1))

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities for a uint8 ``[H, W, 3]`` image, averaged over the test crops."""
        if self.backend == "onnxruntime":
            views = eval_views_numpy(image, self.img_size, self.crop_pct, self.mean, self.std, self.num_crops)
            logits = self.model(views).astype(np.float32)
            e = np.exp(logits - logits.max(-1, keepdims=True))
            return (e / e.sum(-1, keepdims=True)).mean(0).astype(np.float64)
        import torch

        from lightact.data.image.transforms import ImageTransformSpec, eval_view

        spec = ImageTransformSpec(
            img_size=self.img_size, crop_pct=self.crop_pct, mean=self.mean, std=self.std
        )
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        with torch.inference_mode():
            views = torch.stack([eval_view(tensor, spec, v) for v in range(self.num_crops)])
            probs = self.model(views.to(self.device)).float().softmax(-1).mean(0)
        return probs.cpu().numpy().astype(np.float64)

    def predict(
        self,
        source: str | Path | np.ndarray,
        topk: int = 5,
        window: int | None = None,
        stride: int | None = None,
    ) -> Prediction:
        """One image: a file, or an RGB uint8 array ``[H, W, 3]``. ``window`` and ``stride`` are
        checked like the other predictors' and have no effect: an image is one frame."""
        _, _, topk = self.check_options(window, stride, topk)
        if isinstance(source, np.ndarray):
            if source.ndim != 3 or source.shape[-1] != 3 or source.dtype != np.uint8:
                raise ValueError(f"expected an RGB uint8 array [H, W, 3], got {source.dtype} {source.shape}")
            image, name = source, "array"
        else:
            image, name = read_rgb(Path(source), self.img_size), str(source)
        probs = self.probabilities(image)
        top = top_classes(probs, self.classes, topk)
        # A still image is one "window" of one frame, so the JSON reads like a clip's.
        window = WindowPrediction(0, 1, 0.0, 1.0, probs, top)
        return Prediction(
            source=name,
            classes=self.classes,
            probabilities=probs,
            topk=top,
            windows=[window],
            fps=1.0,
            num_frames=1,
            window=1,
            stride=1,
        )
