"""lightact: efficient transformer-based human action recognition."""

from lightact.engine.checkpoint import load_model as _load_model_and_meta
from lightact.inference import Prediction, Recognizer
from lightact.models.registry import create_model, list_models

__version__ = "0.1.0"


def load_model(work_dir_or_checkpoint):
    """A trained model (in eval mode) from a work directory or its ``model.safetensors``."""
    return _load_model_and_meta(work_dir_or_checkpoint)[0]


__all__ = ["Prediction", "Recognizer", "create_model", "list_models", "load_model", "__version__"]
