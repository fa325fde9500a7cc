"""The models a server offers: each work directory's recogniser, loaded once at start-up, under a
unique name, with the kinds of input it takes."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightact.inference import Recognizer
from lightact.inference.base import Predictor
from lightact.utils import safe_file_name

__all__ = ["ServedModel", "load_models", "model_kinds"]


def model_kinds(modality: str) -> tuple[str, ...]:
    """The kinds of upload (:data:`lightact.serve.limits.KINDS`) a model of ``modality`` takes: a
    skeleton model takes skeleton files, and videos where the pose extractor (MediaPipe) is
    installed."""
    if modality == "skeleton":
        has_pose = importlib.util.find_spec("mediapipe") is not None
        return ("skeleton", "video") if has_pose else ("skeleton",)
    return {"video": ("video",), "image": ("image",), "longvideo": ("video",)}[modality]


@dataclass
class ServedModel:
    """One work directory's recogniser and how ``/models`` describes it."""

    name: str
    work_dir: Path
    recognizer: Predictor
    kinds: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        r = self.recognizer
        return {
            "name": self.name,
            "modality": r.modality,
            "model": r.meta.get("model"),
            "backend": r.backend,
            "classes": len(r.classes),
            "class_names": list(r.classes),
            "kinds": list(self.kinds),
            "window_unit": r.window_unit,
        }


def load_models(
    work_dirs: Sequence[str | Path], device: str = "cpu", backend: str = "torch"
) -> dict[str, ServedModel]:
    """Each work directory's recogniser (``Recognizer.from_checkpoint``), named by the folder's
    name (numbered when two folders share one); errors are the CLI's ``ValueError`` and
    ``OSError`` messages, naming the folder."""
    if not work_dirs:
        raise ValueError("give at least one WORK_DIR to serve")
    models: dict[str, ServedModel] = {}
    for work_dir in work_dirs:
        path = Path(work_dir)
        recognizer = Recognizer.from_checkpoint(path, device, backend=backend)
        folder = path if path.is_dir() else path.parent
        name = base = safe_file_name(folder.resolve().name, "model")
        n = 1
        while name in models:
            n += 1
            name = f"{base}_{n}"
        models[name] = ServedModel(name, path, recognizer, model_kinds(recognizer.modality))
    return models
