"""Reading weights files and loading them into models: the one home of weight I/O, below the
model families and above nothing but torch and safetensors (the role of timm's ``_helpers.py`` and
``_builder.py``).

A weights file is data: safetensors, or a torch file read with ``weights_only=True``, so nothing in
it can run code. What the engine adds on top (the model description in a trained model's metadata,
atomic checkpoint writes) lives in :mod:`lightact.engine.checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

__all__ = ["WEIGHTS_FILE", "clean_state_dict", "load_pretrained", "read_state_dict", "resolve_weights_path"]

WEIGHTS_FILE = "model.safetensors"  # what a training run leaves in its work directory

# Prefixes that training wrappers put before the model's own keys: Lightning's ``model.`` (the
# module's attribute) and DDP's / DataParallel's ``module.``.
_WRAPPER_PREFIXES = ("model.", "module.")


def resolve_weights_path(work_dir_or_file: str | Path) -> Path:
    """A work directory's ``model.safetensors``, or the file itself; an error when there is none."""
    path = Path(work_dir_or_file)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no model weights at {path}")
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A user's weights file: safetensors, or a torch file read without unpickling code. A lightact
    work directory gives its trained model; checkpoints that nest the weights under ``state_dict``
    or ``model`` (Lightning, timm, MMAction2) are unwrapped."""
    path = Path(path)
    if path.is_dir():
        path = resolve_weights_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{path} is not a readable safetensors file ({err})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for foreign or unsafe files
        raise ValueError(
            f"{path} cannot be read as plain weights ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "convert it to safetensors"
        ) from None
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a dictionary of tensors")
    return state


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with a training wrapper's key prefix (``model.``, ``module.``) removed, once per key."""
    return {
        next((key[len(p) :] for p in _WRAPPER_PREFIXES if key.startswith(p)), key): value
        for key, value in state.items()
    }


def load_pretrained(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Initialise ``model`` from a user's weights; returns what was left out.

    A model that needs to adapt foreign weights (2D -> 3D inflation, renamed keys) defines
    ``adapt_state_dict``. Tensors whose shape does not fit (typically the classifier of another
    label set) are skipped and reported; a file of which nothing fits is an error.
    """
    state = clean_state_dict(read_state_dict(path))
    if hasattr(model, "adapt_state_dict"):
        state = model.adapt_state_dict(state)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise ValueError(f"no tensor in {path} fits model {type(model).__name__}: is it another model's?")
    missing, _ = model.load_state_dict(fitting, strict=False)
    return {
        "missing": sorted(missing),
        "shape_mismatch": sorted(k for k in state if k in own and k not in fitting),
        "unexpected": sorted(k for k in state if k not in own),
    }
