"""Predict with a trained lightact model: skeleton sequences, video clips, still images, long videos.

``Recognizer.from_checkpoint(work_dir)`` gives the predictor for the checkpoint's modality, and
:func:`predict_path` classifies a file or a folder with it, writing JSON and timelines. The files,
each importing only those listed after it:

* this package: :class:`Recognizer`, :func:`predict_path` and the :data:`PREDICTORS` table;
* ``skeleton``, ``video``, ``image``, ``longvideo``: one predictor per kind of input
  (``SkeletonRecognizer``, ``VideoRecognizer``, ``ImageRecognizer``, ``LongVideoRecognizer``);
* ``base``: what they share (:class:`~lightact.inference.base.Predictor`: checkpoint loading,
  option checks, which files a folder gives);
* ``files``: window starts and the per-file loop :func:`~lightact.inference.files.predict_each`;
* ``results``: :class:`Prediction` and its parts, its JSON, table and timeline.
"""

from __future__ import annotations

import importlib
from abc import ABC
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightact.inference.base import Predictor, checkpoint_meta
from lightact.inference.files import input_files, predict_each, window_starts
from lightact.inference.results import (
    ClassScore,
    NoPersonError,
    Prediction,
    PredictionInputError,
    WindowPrediction,
)

__all__ = [
    "PREDICTORS",
    "ClassScore",
    "ImageRecognizer",
    "LongVideoRecognizer",
    "NoPersonError",
    "Prediction",
    "PredictionInputError",
    "Recognizer",
    "SkeletonRecognizer",
    "VideoRecognizer",
    "WindowPrediction",
    "predict_path",
    "window_starts",
]

# The checkpoint's modality -> "module:class" of its predictor, imported on first use: predicting
# with one modality does not import the others' readers, transforms and encoders.
PREDICTORS = {
    "skeleton": "lightact.inference.skeleton:SkeletonRecognizer",
    "video": "lightact.inference.video:VideoRecognizer",
    "image": "lightact.inference.image:ImageRecognizer",
    "longvideo": "lightact.inference.longvideo:LongVideoRecognizer",
}


def predictor_class(modality: str) -> type[Predictor]:
    """The predictor for a checkpoint's ``meta["modality"]``."""
    if modality not in PREDICTORS:
        raise ValueError(f"no predictor for {modality!r} models: lightact predicts {', '.join(PREDICTORS)}")
    module, _, name = PREDICTORS[modality].partition(":")
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str) -> type[Predictor]:
    """``lightact.inference.VideoRecognizer`` and the others, imported when first asked for."""
    for modality, target in PREDICTORS.items():
        if target.endswith(f":{name}"):
            return predictor_class(modality)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Recognizer(ABC):  # noqa: B024 (an ABC for register() alone: there is nothing to implement)
    """A trained lightact model ready to predict, whatever its input.

    ``Recognizer.from_checkpoint(work_dir)`` and ``Recognizer(model, meta, ...)`` build the predictor
    named by the checkpoint's modality (checkpoints that name none are skeleton models): a
    ``SkeletonRecognizer``, ``VideoRecognizer``, ``ImageRecognizer`` or ``LongVideoRecognizer``, each
    of which is a ``Recognizer`` (they share :class:`~lightact.inference.base.Predictor`, which sits
    below this package and so cannot inherit from this class; it is registered instead). Keyword
    options go to that predictor (for skeletons: ``transforms``, ``batch_size``, ...).
    """

    def __new__(cls, model: nn.Module, meta: dict[str, Any], *args: Any, **kwargs: Any) -> Predictor:
        return predictor_class(meta.get("modality", "skeleton"))(model, meta, *args, **kwargs)

    @staticmethod
    def from_checkpoint(path: str | Path, device: str | torch.device = "cpu", **options: Any) -> Predictor:
        """Load a work directory or its ``model.safetensors`` with the predictor for its modality."""
        modality = checkpoint_meta(path).get("modality", "skeleton")
        return predictor_class(modality).from_checkpoint(path, device, **options)


Recognizer.register(Predictor)


def predict_path(
    checkpoint: str | Path | Predictor,
    input: str | Path,
    window: int | float | None = None,
    stride: int | float | None = None,
    topk: int = 5,
    out_dir: str | Path | None = None,
    *,
    device: str = "cpu",
    skip_errors: bool = False,
) -> list[Prediction]:
    """Predict a file, or every file of a folder that the checkpoint's predictor reads (not recursive,
    sorted by name): skeleton pickles, ``.npy`` arrays and videos for a skeleton model, videos for a
    clip model, images for an image model, videos and ``.safetensors`` feature files for a long-video
    model. ``checkpoint`` is a work directory, its ``model.safetensors``, or a loaded predictor.
    ``window`` and ``stride`` count frames (seconds for long videos; ignored for images).

    With ``out_dir``, write ``<name>.json`` (and, except for images, ``<name>_timeline.png``) for each
    prediction: ``<name>`` is the file's stem, with ``_<frame_dir>`` appended for a pickle holding
    several annotations (and a number when names would collide). With ``skip_errors`` a file of a
    folder that cannot be read is skipped with a warning instead of stopping the run; a folder in
    which nothing could be classified is an error."""
    if isinstance(checkpoint, Recognizer):
        recognizer = checkpoint
    else:
        recognizer = Recognizer.from_checkpoint(checkpoint, device)
    window, stride, topk = recognizer.check_options(window, stride, topk)
    inputs = recognizer.inputs
    predictions = predict_each(
        input_files(Path(input), inputs.suffixes, inputs.kind),
        lambda file: recognizer.predict(file, window=window, stride=stride, topk=topk),
        out_dir,
        skip_errors,
        inputs.errors,
        inputs.timeline,
    )
    if not predictions:
        raise PredictionInputError(f"nothing in {input} could be classified")
    return predictions
