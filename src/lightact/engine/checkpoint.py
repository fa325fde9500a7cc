"""Checkpoints that survive a kill and load without unpickling code.

* Resume state (Lightning's ``.ckpt``: weights, optimiser, loop counters, RNG) is written to a
  temporary file and renamed into place, so a kill mid-write leaves the previous checkpoint intact,
  and it is read back with ``torch.load(weights_only=True)``.
* The model a run delivers is a safetensors file whose metadata says how to rebuild the model
  (registered name, constructor arguments, joint layout, class names).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from lightact.data.skeleton.layouts import Layout
from lightact.models.weights import resolve_weights_path
from lightact.utils import atomic_write

__all__ = ["AtomicCheckpointIO", "load_model", "read_meta", "save_weights"]


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def save_weights(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    """Write weights and the JSON ``meta`` needed to rebuild the model."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata={"lightact": json.dumps(meta)}))


def read_meta(path: Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("lightact")
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a readable safetensors file ({err})") from None
    if raw is None:
        raise ValueError(f"{path} was not written by lightact: it has no model description")
    return json.loads(raw)


def load_model(work_dir_or_file: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a work directory or its ``model.safetensors``; returns
    ``(model in eval mode, meta)`` where meta holds the model name, arguments and class names."""
    from lightact.models.registry import rebuild_model

    path = resolve_weights_path(work_dir_or_file)
    meta = read_meta(path)
    kwargs = dict(meta["kwargs"])
    if isinstance(kwargs.get("layout"), dict):
        kwargs["layout"] = Layout.from_dict(kwargs["layout"])
    model = rebuild_model(meta["model"], kwargs)
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit model {meta['model']}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model.eval(), meta
