"""Predict with a trained lightact model: skeleton sequences, video clips, still images, long videos.

``Recognizer.from_checkpoint(work_dir)`` gives the predictor for the checkpoint's modality, and
:func:`predict_path` classifies a file or a folder with it, writing JSON and timelines. The files,
each importing only those listed after it:

* this package: :class:`Recognizer`, :func:`predict_path` and the :data:`PREDICTORS` table;
* ``skeleton``, ``video``, ``image``, ``longvideo``: one predictor per kind of input
  (``SkeletonRecognizer``, ``VideoRecognizer``, ``ImageRecognizer``, ``LongVideoRecognizer``);
* ``live``: a skeleton model on a camera, stream or paced file (``predict --live``);
* ``render``: the input with skeletons, ids and answers drawn on it (``predict --render``);
* ``base``: what they share (:class:`~lightact.inference.base.Predictor`: checkpoint loading,
  option checks, which files a folder gives, rendering);
* ``runtime``: an exported ``model.onnx`` as a predictor's model (ONNX Runtime, no torch);
* ``files``: window starts and the per-file loop :func:`~lightact.inference.files.predict_each`;
* ``results``: :class:`Prediction` and its parts, its JSON, table and timeline.
"""

from __future__ import annotations

import importlib
from abc import ABC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightact.inference.base import Predictor, checkpoint_meta
from lightact.inference.files import input_files, predict_each, window_starts
from lightact.inference.results import (
    ClassScore,
    NoPersonError,
    Prediction,
    PredictionInputError,
    WindowPrediction,
)
from lightact.inference.runtime import OnnxModel

if TYPE_CHECKING:
    import torch
    from torch import nn

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

    ``backend="onnxruntime"`` (or :meth:`from_onnx`) runs the file ``lightact export`` wrote with
    ONNX Runtime instead of PyTorch, from the description stored in it; for skeleton and image
    models nothing on that path imports torch.
    """

    def __new__(
        cls, model: nn.Module | OnnxModel, meta: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Predictor:
        return predictor_class(meta.get("modality", "skeleton"))(model, meta, *args, **kwargs)

    @staticmethod
    def from_checkpoint(
        path: str | Path, device: str | torch.device = "cpu", *, backend: str = "torch", **options: Any
    ) -> Predictor:
        """Load a work directory or its ``model.safetensors`` with the predictor for its modality
        (``backend="onnxruntime"``: its exported ``model.onnx``, or an ``.onnx`` file)."""
        if backend == "onnxruntime":
            return Recognizer.from_onnx(path, **options)
        if backend != "torch":
            raise ValueError(f"unknown backend {backend!r}: choose torch or onnxruntime")
        modality = checkpoint_meta(path).get("modality", "skeleton")
        return predictor_class(modality).from_checkpoint(path, device, **options)

    @staticmethod
    def from_onnx(path: str | Path, **options: Any) -> Predictor:
        """The predictor of an exported ``.onnx`` file (or a work directory's ``model.onnx``), run
        by ONNX Runtime, for the modality its description names."""
        model = OnnxModel(path)
        return predictor_class(model.meta.get("modality", "skeleton")).from_checkpoint(
            model, backend="onnxruntime", **options
        )


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
    backend: str = "torch",
    render: str | Path | None = None,
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
        recognizer = Recognizer.from_checkpoint(checkpoint, device, backend=backend)
    window, stride, topk = recognizer.check_options(window, stride, topk)
    inputs = recognizer.inputs
    files = input_files(Path(input), inputs.suffixes, inputs.kind)

    def predict_one(file: Path) -> Prediction | list[Prediction]:
        options = {"window": window, "stride": stride, "topk": topk}
        if render is None:
            return recognizer.predict(file, **options)
        target = Path(render)
        if Path(input).is_dir():
            suffix = ".png" if recognizer.modality == "image" else ".mp4"
            target = target / f"{file.stem}_rendered{suffix}"
        return recognizer.predict_and_render(file, target, **options)

    predictions = predict_each(
        files,
        predict_one,
        out_dir,
        skip_errors,
        inputs.errors,
        inputs.timeline,
    )
    if not predictions:
        raise PredictionInputError(f"nothing in {input} could be classified")
    return predictions
