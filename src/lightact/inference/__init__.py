"""Predict with a trained lightact model: skeleton sequences, video clips, still images, long videos.

One module per kind of input, each importing only the shared parts below it:

* :mod:`~lightact.inference.results`: :class:`Prediction` and its parts (the bottom);
* :mod:`~lightact.inference.files`: window starts and the per-file loop;
* :mod:`~lightact.inference.skeleton`, ``video``, ``image``, ``longvideo``: the predictors;
* this package: :func:`predict_path`, which picks the predictor from the checkpoint's modality
  through :data:`PREDICTORS`.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from pathlib import Path

from lightact.data.video.reader import VIDEO_SUFFIXES
from lightact.engine.checkpoint import read_meta, resolve_weights_path
from lightact.inference.files import input_files, unique_name, window_starts
from lightact.inference.results import (
    ClassScore,
    NoPersonError,
    Prediction,
    PredictionInputError,
    WindowPrediction,
)
from lightact.inference.skeleton import (
    DEFAULT_FPS,
    DEFAULT_WINDOW,
    SKELETON_SUFFIXES,
    WHOLE_CLIP_MAX_FRAMES,
    Recognizer,
)

__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_WINDOW",
    "PREDICTORS",
    "SKELETON_SUFFIXES",
    "WHOLE_CLIP_MAX_FRAMES",
    "ClassScore",
    "NoPersonError",
    "Prediction",
    "PredictionInputError",
    "Recognizer",
    "WindowPrediction",
    "predict_path",
    "window_starts",
]

# The checkpoint's modality -> the module that predicts with it, imported on first use so that one
# modality's dependencies (PyAV, MediaPipe, timm) are not loaded for another's.
PREDICTORS = {
    "skeleton": "lightact.inference.skeleton",
    "video": "lightact.inference.video",
    "image": "lightact.inference.image",
    "longvideo": "lightact.inference.longvideo",
}


def predict_path(
    checkpoint: str | Path | Recognizer,
    input: str | Path,
    window: int | None = None,
    stride: int | None = None,
    topk: int = 5,
    out_dir: str | Path | None = None,
    *,
    device: str = "cpu",
    skip_errors: bool = False,
) -> list[Prediction]:
    """Classify a file or every ``.pkl``/``.pickle``/``.npy``/video file of a folder (not recursive,
    sorted by name). With ``out_dir``, write ``<name>.json`` and ``<name>_timeline.png`` for each
    prediction: ``<name>`` is the file's stem, with ``_<frame_dir>`` appended for a pickle holding
    several annotations (and a number when names would collide). With ``skip_errors`` a file that
    cannot be classified is skipped with a warning instead of stopping the run."""
    if not isinstance(checkpoint, Recognizer):
        modality = read_meta(resolve_weights_path(checkpoint)).get("modality", "skeleton")
        if modality != "skeleton":
            # Clips, images and long videos have predictors of their own, with the same options.
            predictor = importlib.import_module(PREDICTORS[modality])
            return predictor.predict_files(
                Path(checkpoint),
                Path(input),
                window=window,
                stride=stride,
                topk=topk,
                out_dir=out_dir,
                device=device,
                skip_errors=skip_errors,
            )
    recognizer = (
        checkpoint if isinstance(checkpoint, Recognizer) else Recognizer.from_checkpoint(checkpoint, device)
    )
    input = Path(input)
    files = input_files(
        input, SKELETON_SUFFIXES | VIDEO_SUFFIXES, "skeleton (.pkl, .pickle, .npy) or video file"
    )
    out = Path(out_dir) if out_dir is not None else None
    predictions: list[Prediction] = []
    used: set[str] = set()
    for file in files:
        try:
            result = recognizer.predict(file, window=window, stride=stride, topk=topk)
        except (ValueError, OSError, pickle.UnpicklingError) as err:  # UnsafePickleError included
            if not skip_errors or not input.is_dir():
                raise
            warnings.warn(f"skipping {file}: {err}", stacklevel=2)
            continue
        results = result if isinstance(result, list) else [result]
        for prediction in results:
            predictions.append(prediction)
            if out is None:
                continue
            name = file.stem
            if len(results) > 1:
                name = f"{name}_{prediction.sample or len(used)}"
            name = unique_name(name, used)
            prediction.save_json(out / f"{name}.json")
            prediction.save_timeline(out / f"{name}_timeline.png")
    if not predictions:
        raise PredictionInputError(f"nothing in {input} could be classified")
    return predictions
