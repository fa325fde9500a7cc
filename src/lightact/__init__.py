"""lightact: efficient transformer-based human action recognition.

The names below are imported on first use, so that ``import lightact`` itself is cheap and a
deployment that runs an exported model with ONNX Runtime (``Recognizer.from_onnx``) never imports
torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Prediction": "lightact.inference",
    "Recognizer": "lightact.inference",
    "create_model": "lightact.models.registry",
    "list_models": "lightact.models.registry",
}


def load_model(work_dir_or_checkpoint):
    """A trained model (in eval mode) from a work directory or its ``model.safetensors``."""
    from lightact.engine.checkpoint import load_model as load_model_and_meta

    return load_model_and_meta(work_dir_or_checkpoint)[0]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lightact' has no attribute {name!r}")


__all__ = ["Prediction", "Recognizer", "create_model", "list_models", "load_model", "__version__"]
