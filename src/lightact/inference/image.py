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
from lightact.inference.files import input_files, predict_each
from lightact.inference.results import Prediction, WindowPrediction, top_classes


class ImageRecognizer:
    """A trained image classifier with its preprocessing; :meth:`predict` takes a file or pixels."""

    def __init__(self, model: nn.Module, meta: dict[str, Any], device: str = "cpu") -> None:
        if meta.get("modality") != "image":
            raise ValueError(
                f"this checkpoint holds a {meta.get('modality', 'skeleton')} model, not an image model"
            )
        data = meta.get("data") or {}
        self.model = model.to(device).eval()
        self.device = device
        self.classes: list[str] = list(meta["classes"])
        self.spec = ImageTransformSpec(
            img_size=int(data.get("img_size", 224)),
            crop_pct=float(data.get("crop_pct", 0.875)),
            mean=tuple(data.get("mean", ImageTransformSpec.mean)),
            std=tuple(data.get("std", ImageTransformSpec.std)),
        )
        self.num_crops = int(data.get("num_crops", 1))

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "cpu") -> ImageRecognizer:
        from lightact.engine.checkpoint import load_model

        model, meta = load_model(checkpoint)
        return cls(model, meta, device)

    @torch.inference_mode()
    def probabilities(self, image: torch.Tensor) -> np.ndarray:
        """Class probabilities for a uint8 ``[3, H, W]`` image, averaged over the test crops."""
        views = torch.stack([eval_view(image, self.spec, v) for v in range(self.num_crops)])
        probs = self.model(views.to(self.device)).float().softmax(-1).mean(0)
        return probs.cpu().numpy().astype(np.float64)

    def predict(self, source: str | Path | np.ndarray, topk: int = 5) -> Prediction:
        """One image: a file, or an RGB uint8 array ``[H, W, 3]``."""
        if isinstance(source, np.ndarray):
            if source.ndim != 3 or source.shape[-1] != 3 or source.dtype != np.uint8:
                raise ValueError(f"expected an RGB uint8 array [H, W, 3], got {source.dtype} {source.shape}")
            image, name = torch.from_numpy(np.ascontiguousarray(source)).permute(2, 0, 1), "array"
        else:
            image, name = decode_image(Path(source), self.spec.img_size), str(source)
        probs = self.probabilities(image)
        top = top_classes(probs, self.classes, max(1, topk))
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


def predict_files(
    checkpoint: Path,
    paths: Path | list[Path],
    topk: int = 5,
    out_dir: str | Path | None = None,
    device: str = "cpu",
    skip_errors: bool = False,
    **_: Any,
) -> list[Prediction]:
    """Classify an image, or every image of a folder; with ``out_dir`` write ``<stem>.json`` each.
    Window options of the video predictors are accepted and ignored. With ``skip_errors`` an
    unreadable image is skipped with a warning (it stops the run otherwise)."""
    recognizer = ImageRecognizer.from_checkpoint(checkpoint, device)
    inputs = paths if isinstance(paths, list) else [paths]
    files = [f for p in inputs for f in input_files(Path(p), IMAGE_SUFFIXES, "image")]
    predict_one = lambda file: recognizer.predict(file, topk)  # noqa: E731
    return predict_each(files, predict_one, out_dir, skip_errors, (ImageReadError,), timeline=False)
