"""lightact: efficient transformer-based human action recognition.

The public names are imported on first use (PEP 562): ``import lightact`` and every ``lightact
--help`` would otherwise pay for torch and Lightning before doing anything.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "Prediction": "lightact.inference.results",
    "Recognizer": "lightact.inference",
    "create_model": "lightact.models.registry",
    "list_models": "lightact.models.registry",
}

if TYPE_CHECKING:
    from lightact.inference import Recognizer
    from lightact.inference.results import Prediction
    from lightact.models.registry import create_model, list_models


def load_model(work_dir_or_checkpoint):
    """A trained model (in eval mode) from a work directory or its ``model.safetensors``."""
    from lightact.engine.checkpoint import load_model as load_model_and_meta

    return load_model_and_meta(work_dir_or_checkpoint)[0]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'lightact' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["Prediction", "Recognizer", "create_model", "list_models", "load_model", "__version__"]
