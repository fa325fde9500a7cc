"""Predict actions in still images with a trained image model (``lightact predict WORK_DIR IMAGE``).

The image is prepared as the evaluation did it (resize to ``img_size / crop_pct``, crop, normalise;
with ``num_crops > 1`` the test crops' probabilities are averaged), using the preprocessing stored
in the checkpoint, so a prediction matches ``lightact eval`` on the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightact.data.image.sources import IMAGE_SUFFIXES, ImageReadError, decode_image
from lightact.data.image.transforms import ImageTransformSpec, eval_view
from lightact.inference.base import Predictor
from lightact.inference.files import InputFiles
from lightact.inference.results import Prediction, WindowPrediction, top_classes

__all__ = ["ImageRecognizer"]


class ImageRecognizer(Predictor):
    """A trained image classifier with its preprocessing; :meth:`predict` takes a file or pixels."""

    modality = "image"
    # One image is one frame: no timeline to draw.
    inputs = InputFiles(IMAGE_SUFFIXES, "image", errors=(ImageReadError,), timeline=False)

    def __init__(self, model: nn.Module, meta: dict[str, Any], device: str | torch.device = "cpu") -> None:
        super().__init__(model, meta, device)
        data = meta.get("data") or {}
        self.spec = ImageTransformSpec(
            img_size=int(data.get("img_size", 224)),
            crop_pct=float(data.get("crop_pct", 0.875)),
            mean=tuple(data.get("mean", ImageTransformSpec.mean)),
            std=tuple(data.get("std", ImageTransformSpec.std)),
        )
        self.num_crops = int(data.get("num_crops", 1))

    @torch.inference_mode()
    def probabilities(self, image: torch.Tensor) -> np.ndarray:
        """Class probabilities for a uint8 ``[3, H, W]`` image, averaged over the test crops."""
        views = torch.stack([eval_view(image, self.spec, v) for v in range(self.num_crops)])
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
            image, name = torch.from_numpy(np.ascontiguousarray(source)).permute(2, 0, 1), "array"
        else:
            image, name = decode_image(Path(source), self.spec.img_size), str(source)
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
