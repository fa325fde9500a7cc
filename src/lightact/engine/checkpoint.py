"""Checkpoints that survive a kill and load without unpickling code.

* Resume state (Lightning's ``.ckpt``: weights, optimiser, loop counters, RNG) is written to a
  temporary file and renamed into place, so a kill mid-write leaves the previous checkpoint intact,
  and it is read back with ``torch.load(weights_only=True)``.
* The model a run delivers is a safetensors file whose metadata says how to rebuild the model
  (registered name, constructor arguments, joint layout, class names).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from lightact.data.skeleton.layouts import Layout

WEIGHTS_FILE = "model.safetensors"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path`` (atomic on POSIX within a filesystem)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by the owner only
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def layout_to_dict(layout: Layout) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(layout).items()}


def layout_from_dict(data: dict[str, Any]) -> Layout:
    return Layout(
        name=data["name"],
        joints=tuple(data["joints"]),
        bones=tuple(tuple(b) for b in data["bones"]),
        center=data["center"],
        flip_pairs=tuple(tuple(p) for p in data["flip_pairs"]),
        # Layouts saved before spine/shoulders existed have neither.
        **{k: tuple(tuple(end) for end in data[k]) for k in ("spine", "shoulders") if data.get(k)},
    )


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


def resolve_weights_path(work_dir_or_file: str | Path) -> Path:
    path = Path(work_dir_or_file)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no model weights at {path}")
    return path


def load_model(work_dir_or_file: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a work directory or its ``model.safetensors``; returns
    ``(model in eval mode, meta)`` where meta holds the model name, arguments and class names."""
    from lightact.models.registry import create_model

    path = resolve_weights_path(work_dir_or_file)
    meta = read_meta(path)
    kwargs = dict(meta["kwargs"])
    if isinstance(kwargs.get("layout"), dict):
        kwargs["layout"] = layout_from_dict(kwargs["layout"])
    model = create_model(meta["model"], **kwargs)
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit model {meta['model']}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model.eval(), meta


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


def load_pretrained(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Initialise ``model`` from a user's weights; returns what was left out.

    A model that needs to adapt foreign weights (2D -> 3D inflation, renamed keys) defines
    ``adapt_state_dict``. Tensors whose shape does not fit (typically the classifier of another
    label set) are skipped and reported; a file of which nothing fits is an error.
    """
    state = read_state_dict(path)
    prefixes = ("model.", "module.")  # Lightning and DDP wrappers
    state = {next((k[len(p) :] for p in prefixes if k.startswith(p)), k): v for k, v in state.items()}
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
