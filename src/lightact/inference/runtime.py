"""An exported model as a predictor's model: an ONNX Runtime session and the description stored in
the file (:mod:`lightact.export.session`), with no torch import.

:class:`OnnxModel` is what a predictor holds instead of a PyTorch module when it runs with
``backend="onnxruntime"``; it takes and returns numpy arrays. :func:`find_onnx` says which file a
work directory or path means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lightact.export.session import onnx_description, ort_session

__all__ = ["BACKENDS", "ONNX_FILE", "OnnxModel", "find_onnx"]

BACKENDS = ("torch", "onnxruntime")
ONNX_FILE = "model.onnx"  # what `lightact export WORK_DIR` writes


def find_onnx(path: str | Path) -> Path:
    """An ``.onnx`` file, or the ``model.onnx`` of a work directory; an error saying how to make it."""
    path = Path(path)
    candidate = path / ONNX_FILE if path.is_dir() else path
    if candidate.suffix.lower() != ".onnx" and not path.is_dir():
        candidate = path.parent / ONNX_FILE
    if not candidate.is_file():
        raise FileNotFoundError(
            f"no exported model at {candidate}: run `lightact export {path}` first (or give the .onnx file)"
        )
    return candidate


class OnnxModel:
    """An exported lightact model: ``model(*arrays) -> logits`` (numpy) through ONNX Runtime.

    ``meta`` is the checkpoint's model description the file carries (classes, arguments with the
    joint layout, input format, test pipeline), ``input_names`` the graph's inputs in order.
    """

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu") -> None:
        self.path = find_onnx(path)
        self.session = ort_session(self.path, threads=threads, device=device)
        self.meta: dict[str, Any] = onnx_description(self.session, self.path)
        if "classes" not in self.meta or not self.meta.get("classes"):
            raise ValueError(
                f"{self.path} names no classes: export a trained work directory, not a model name"
            )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.form: str = (self.meta.get("onnx") or {}).get("form", "")

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        if len(arrays) != len(self.input_names):
            raise ValueError(f"{self.path} takes {len(self.input_names)} input(s) {self.input_names}")
        feeds = dict(zip(self.input_names, arrays, strict=True))
        return self.session.run(None, feeds)[0]

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, form={self.form!r})"
