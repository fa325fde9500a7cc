"""What every predictor shares: loading a checkpoint with errors that say what to pass, the model on
its device with its class names, one check of the ``window``/``stride``/``topk`` options, and the
:class:`~lightact.inference.files.InputFiles` that :func:`lightact.inference.predict_path` reads.

Two backends run the model: ``"torch"`` (the checkpoint's PyTorch module) and ``"onnxruntime"``
(the file ``lightact export`` wrote, an :class:`~lightact.inference.runtime.OnnxModel`). torch is
imported only by the first, so a predictor built with :meth:`Predictor.from_onnx` runs where torch
is not installed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from lightact.errors import UsageError
from lightact.inference.files import InputFiles
from lightact.inference.runtime import BACKENDS, OnnxModel
from lightact.utils import is_number

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lightact.inference.results import Prediction

__all__ = ["Predictor", "checkpoint_meta", "load_backend", "load_checkpoint"]

_WHAT_TO_PASS = "pass a lightact work directory (holding model.safetensors) or its model.safetensors file"


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The model description stored in a work directory's (or a file's) ``model.safetensors``,
    checked (:func:`~lightact.engine.checkpoint.check_meta`) before anything is built from it."""
    from lightact.engine.checkpoint import check_meta, read_meta
    from lightact.models.weights import resolve_weights_path

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: {_WHAT_TO_PASS}")
    try:
        file = resolve_weights_path(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}: {_WHAT_TO_PASS}") from None
    meta = read_meta(file)
    check_meta(meta, file)
    if "input_format" not in meta:
        raise ValueError(f"{file} is not a lightact model: its description has no 'input_format'")
    return meta


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(model in eval mode, meta)`` from a work directory or its ``model.safetensors``."""
    from lightact.engine.checkpoint import load_model

    checkpoint_meta(path)  # a clear error before anything is built
    try:
        return load_model(path)
    except (KeyError, TypeError) as err:
        raise _unreadable(path, err) from None


def load_backend(path: str | Path | OnnxModel, backend: str = "torch") -> tuple[Any, dict[str, Any]]:
    """``(model, meta)`` for ``backend``: the checkpoint's PyTorch module, or (``"onnxruntime"``)
    the :class:`OnnxModel` of the ``.onnx`` file (a work directory's ``model.onnx``; or one already
    opened) and the description it carries."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if backend == "onnxruntime":
        model = path if isinstance(path, OnnxModel) else OnnxModel(path)
        return model, model.meta
    return load_checkpoint(path)


def _unreadable(path: str | Path, err: Exception) -> ValueError:
    return ValueError(f"{path} is not a lightact model: its model description is unreadable ({err!r})")


def _positive(value: Any, what: str, unit: str) -> int | float | None:
    """``value`` as a positive number of ``unit`` (frames: whole numbers), or ``None`` for none."""
    if value is None:
        return None
    if not is_number(value, whole=unit == "frames") or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{what} must be a positive number of {unit}, got {value!r}")
    return int(value) if unit == "frames" else float(value)


class Predictor:
    """Base of the four predictors (``SkeletonRecognizer``, ``VideoRecognizer``, ``ImageRecognizer``,
    ``LongVideoRecognizer``); :class:`lightact.inference.Recognizer` picks one from a checkpoint.

    A subclass sets the class attributes below and provides ``predict(x, window=..., stride=...,
    topk=...)`` (called by keyword), which returns a :class:`~lightact.inference.Prediction`, or a
    list of them for an input holding several samples.
    """

    modality: ClassVar[str]  # the checkpoint's meta["modality"]
    inputs: ClassVar[InputFiles]  # what predict_path reads from a folder
    window_unit: ClassVar[str] = "frames"  # what window and stride count: "frames" or "seconds"

    def __init__(
        self, model: nn.Module | OnnxModel, meta: dict[str, Any], device: str | torch.device = "cpu"
    ) -> None:
        self.check_modality(meta)
        self.meta = meta
        self.classes: list[str] = [str(c) for c in meta["classes"]]
        if isinstance(model, OnnxModel):
            self.backend = "onnxruntime"
            self.device = str(device)
            self.model: Any = model
        else:
            import torch

            self.backend = "torch"
            self.device = torch.device(device)
            self.model = model.to(self.device).eval()

    @classmethod
    def check_modality(cls, meta: dict[str, Any]) -> None:
        """Refuse a checkpoint of another modality than this predictor's."""
        found = meta.get("modality", "skeleton")  # checkpoints from before other modalities say none
        if found != cls.modality:
            raise ValueError(
                f"this checkpoint holds a {found} model; {cls.__name__} predicts with {cls.modality} ones"
            )

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", *, backend: str = "torch"
    ) -> Predictor:
        """Load a work directory or its ``model.safetensors`` (``backend="onnxruntime"``: the work
        directory's ``model.onnx``, or an ``.onnx`` file)."""
        model, meta = load_backend(path, backend)
        return cls(model, meta, device)

    @classmethod
    def from_onnx(cls, path: str | Path, **options: Any) -> Predictor:
        """Load an exported ``.onnx`` file (or a work directory's ``model.onnx``) for ONNX Runtime."""
        return cls.from_checkpoint(path, backend="onnxruntime", **options)

    def predict_and_render(
        self, source: str | Path, out: str | Path, **options: Any
    ) -> Prediction | list[Prediction]:
        """:meth:`predict` ``source``, and write it to ``out`` with the answer drawn on it: a video
        with the current window's top 3 (an image: the image, as PNG or JPEG by ``out``'s suffix)."""
        from lightact.inference.render import render_image, render_label_video

        prediction = self.predict(source, **options)
        if self.modality == "image":
            render_image(source, prediction, out)
        else:
            render_label_video(source, prediction, out)
        return prediction

    def check_options(
        self, window: Any, stride: Any, topk: Any
    ) -> tuple[int | float | None, int | float | None, int]:
        """``window`` and ``stride`` as positive numbers of :attr:`window_unit` (``None``: the
        predictor's default), ``topk`` as a positive integer; anything else is a ``ValueError``."""
        window = _positive(window, "window", self.window_unit)
        stride = _positive(stride, "stride", self.window_unit)
        if not is_number(topk, whole=True) or topk < 1:
            raise UsageError(f"topk must be a positive integer, got {topk!r}")
        return window, stride, int(topk)
