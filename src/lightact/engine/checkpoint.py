"""Checkpoints that survive a kill and load without unpickling code.

* Resume state (Lightning's ``.ckpt``: weights, optimiser, loop counters, RNG) is written to a
  temporary file and renamed into place, so a kill mid-write leaves the previous checkpoint intact,
  and it is read back with ``torch.load(weights_only=True)``.
* The model a run delivers is a safetensors file whose metadata says how to rebuild the model
  (registered name, constructor arguments, joint layout, class names).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from lightact.data.skeleton.layouts import Layout
from lightact.errors import DataError, UnsafeFileError
from lightact.models.weights import resolve_weights_path
from lightact.utils import atomic_write

__all__ = [
    "AtomicCheckpointIO",
    "check_meta",
    "inference_pipeline",
    "load_model",
    "read_meta",
    "save_weights",
]


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        def write(tmp: str) -> None:
            # Through a Python file, so that a full disk raises OSError(ENOSPC), not a C++ assertion.
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)

        atomic_write(Path(path), write)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict[str, Any]:
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - unpickling refusals, corrupt zips, truncated files
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise DataError(
                f"{path} is not a training checkpoint lightact can read as plain data ({first})"
            ) from None


def save_weights(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    """Write weights and the JSON ``meta`` needed to rebuild the model."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata={"lightact": json.dumps(meta)}))


def read_meta(path: Path) -> dict[str, Any]:
    """The JSON model description in a ``model.safetensors`` written by :func:`save_weights`, as
    stored (see :func:`check_meta` for what makes it usable). Reads the header only."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("lightact")
    except (SafetensorError, OSError) as err:
        raise DataError(f"{path} is not a readable safetensors file ({err})") from None
    if raw is None:
        raise DataError(f"{path} was not written by lightact: it has no model description")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, over-long numbers, deep nesting
        raise DataError(f"{path}: its model description is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: its model description is a {type(meta).__name__}, not a mapping")
    return meta


# What a description must hold (predictors need "input_format" too), and each entry's JSON type.
_META_KEYS = {"model": str, "kwargs": dict, "classes": list}
_OPTIONAL_KEYS = {"input_format": str, "modality": str, "task": str}
_TASKS = ("classification", "regression")
# Sizes a predictor allocates from the description's data section (frames, pixels).
_DATA_LIMITS = {"max_frames": 100_000, "clip_len": 100_000, "num_frames": 4096, "frame_interval": 1000,
                "resize": 4096, "crop": 4096, "img_size": 4096, "num_crops": 64}  # fmt: skip
_MAX_DATA_INT = 1 << 17
# Memory a rebuilt model may take beyond the tensors its file holds (buffers computed at build).
_MAX_EXTRA_BYTES = 256 << 20


def check_meta(meta: dict[str, Any], path: Path) -> Any:
    """Check a model description before anything is built from it; returns the model's registry
    entry. A description is data: it names a registered model and gives it plain constructor
    arguments, never a file to load, a download or a size beyond reason (:func:`check_arguments`),
    and its class names, modality and data section must fit that model."""
    from lightact.models.registry import check_arguments, model_entry, saved_arguments

    for key, kind in {**_META_KEYS, **_OPTIONAL_KEYS}.items():
        if key not in meta:
            if key in _OPTIONAL_KEYS:
                continue
            raise DataError(f"{path} is not a lightact model: its description has no {key!r}")
        if not isinstance(meta[key], kind):
            raise DataError(
                f"{path}: description key {key!r} is a {type(meta[key]).__name__}, not a {kind.__name__}"
            )
    name = meta["model"]
    try:
        entry = model_entry(name)
    except KeyError as err:
        raise DataError(f"{path}: {err}") from None
    kwargs = meta["kwargs"]
    try:
        check_arguments(name, saved_arguments(name, kwargs))
    except ValueError as err:
        raise UnsafeFileError(f"{path}: model argument {err}") from None
    classes = meta["classes"]
    if not all(isinstance(c, str | int) and not isinstance(c, bool) for c in classes):
        raise DataError(f"{path}: description key 'classes' must list class names")
    heads = kwargs.get("num_classes")
    if isinstance(heads, int) and heads != len(classes):
        raise DataError(
            f"{path}: the model has {heads} outputs (kwargs.num_classes) but its description names "
            f"{len(classes)} classes"
        )
    modality = meta.get("modality", entry.modality)  # descriptions from before modalities say none
    if modality != entry.modality:
        raise DataError(
            f"{path}: the description says modality {modality!r}, but {name} is a {entry.modality} model"
        )
    if meta.get("task", "classification") not in _TASKS:
        raise DataError(f"{path}: task {meta.get('task')!r} is not one of {', '.join(_TASKS)}")
    _check_data_section(meta.get("data"), path)
    return entry


def _check_data_section(data: Any, path: Path) -> None:
    """The description's ``data``: how a predictor prepares inputs; plain, bounded values only."""
    if data is None:
        return
    if not isinstance(data, dict):
        raise DataError(f"{path}: description key 'data' is a {type(data).__name__}, not a mapping")

    def walk(value: Any, key: str, depth: int) -> None:
        if depth > 4:
            raise DataError(f"{path}: description key data.{key} is nested too deeply")
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k), depth + 1)
        elif isinstance(value, list):
            if len(value) > 256:
                raise DataError(f"{path}: description key data.{key} holds {len(value)} values")
            for v in value:
                walk(v, key, depth + 1)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int):
            limit = _DATA_LIMITS.get(key.rsplit(".", 1)[-1], _MAX_DATA_INT)
            if abs(value) > limit:
                raise UnsafeFileError(
                    f"{path}: description key data.{key} = {value} is out of range (at most {limit})"
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise DataError(f"{path}: description key data.{key} = {value} is not finite")
        elif not isinstance(value, str) or len(value) > 256:
            raise DataError(f"{path}: description key data.{key} is not a plain value")

    walk(data, "", 0)
    extraction = data.get("extraction")
    if isinstance(extraction, dict):
        from lightact.models.registry import model_entry

        for stream in ("frame", "clip"):
            weights = extraction.get(f"{stream}_weights")
            # The encoders' weights a long-video model was trained with: read as plain tensors only.
            if weights is not None and not str(weights).endswith(".safetensors"):
                raise UnsafeFileError(
                    f"{path}: data.extraction.{stream}_weights {weights!r} is not a .safetensors file"
                )
            encoder = extraction.get(f"{stream}_encoder")
            if encoder is not None:
                try:
                    model_entry(str(encoder))
                except KeyError as err:
                    raise DataError(f"{path}: data.extraction.{stream}_encoder: {err}") from None


def _layout(value: Any, path: Path) -> Layout:
    """The joint layout in a description (:meth:`Layout.to_dict` form), checked field by field."""
    fields = {"name": str, "joints": list, "bones": list, "center": int, "flip_pairs": list}
    optional = ("spine", "shoulders")  # written only for layouts that name them
    if not isinstance(value, dict) or not set(fields) <= set(value) <= {*fields, *optional}:
        raise DataError(
            f"{path}: kwargs.layout must be a mapping of {', '.join(fields)} (and optionally "
            f"{', '.join(optional)})"
        )
    for key, kind in fields.items():
        if not isinstance(value[key], kind) or isinstance(value[key], bool):
            raise DataError(
                f"{path}: kwargs.layout.{key} is a {type(value[key]).__name__}, not a {kind.__name__}"
            )
    joints = value["joints"]
    if not 0 < len(joints) <= 4096 or not all(isinstance(j, str) and len(j) <= 128 for j in joints):
        raise DataError(f"{path}: kwargs.layout.joints must be 1 to 4096 joint names")
    for key in ("bones", "flip_pairs"):
        pairs = value[key]
        if len(pairs) > 4 * len(joints) or not all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(i, int) and not isinstance(i, bool) for i in p)
            for p in pairs
        ):
            raise DataError(f"{path}: kwargs.layout.{key} must be pairs of joint indices")
    for key in optional:
        ends = value.get(key)
        if ends is not None and not (
            isinstance(ends, list)
            and len(ends) == 2
            and all(
                isinstance(end, list)
                and 0 < len(end) <= len(joints)
                and all(isinstance(i, int) and not isinstance(i, bool) for i in end)
                for end in ends
            )
        ):
            raise DataError(f"{path}: kwargs.layout.{key} must be two lists of joint indices")
    try:
        return Layout.from_dict(value)
    except ValueError as err:
        raise DataError(f"{path}: kwargs.layout: {err}") from None


def _file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape, from the file's header (no tensor is read)."""
    with safe_open(str(path), framework="pt") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118


def _mismatch(
    path: Path, name: str, own: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]
) -> str:
    """What differs between the tensors model ``name`` has (``own``) and those the file holds."""
    missing = sorted(set(own) - set(found))
    unexpected = sorted(set(found) - set(own))
    shapes = [k for k in own if k in found and own[k] != found[k]]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} tensor(s) have other shapes than its description implies, e.g. {k} is "
            f"{list(found[k])} in the file but {list(own[k])} for the model"
        )
    if missing:
        parts.append(f"{len(missing)} tensor(s) of the model are missing, e.g. {', '.join(missing[:3])}")
    if unexpected:
        parts.append(f"{len(unexpected)} tensor(s) are not the model's, e.g. {', '.join(unexpected[:3])}")
    return f"{path} does not fit model {name} as its description builds it: " + "; ".join(parts)


def _rebuild(name: str, kwargs: dict[str, Any], path: Path, device: str | None = None) -> nn.Module:
    from lightact.models.registry import rebuild_model

    try:
        if device is None:
            return rebuild_model(name, kwargs)
        with torch.device(device):
            return rebuild_model(name, kwargs)
    except Exception as err:  # noqa: BLE001 - constructors refuse bad arguments in many ways
        raise DataError(
            f"{path}: model {name} cannot be built from its description ({type(err).__name__}: {err})"
        ) from None


def load_model(work_dir_or_file: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a work directory or its ``model.safetensors``; returns
    ``(model in eval mode, meta)`` where meta holds the model name, arguments and class names.

    The description is checked first (:func:`check_meta`); then the model is built on the meta
    device, which allocates nothing, and its tensors' shapes are compared with the file's header,
    so a description that does not fit its weights (or asks for a huge model) is refused before
    any memory is taken. Only then is the model built and loaded, strictly."""
    path = resolve_weights_path(work_dir_or_file)
    meta = read_meta(path)
    check_meta(meta, path)
    kwargs = dict(meta["kwargs"])
    if "layout" in kwargs:
        kwargs["layout"] = _layout(kwargs["layout"], path)
    name = meta["model"]
    found = _file_shapes(path)
    skeleton = _rebuild(name, kwargs, path, device="meta")
    own = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if own != found:
        raise DataError(_mismatch(path, name, own, found))
    tensors = [*skeleton.parameters(), *skeleton.buffers()]
    size = sum(t.numel() * t.element_size() for t in tensors)
    if size > path.stat().st_size + _MAX_EXTRA_BYTES:
        raise UnsafeFileError(
            f"{path}: its description builds a model of {size >> 20} MiB from a file of "
            f"{path.stat().st_size >> 20} MiB"
        )
    del skeleton
    model = _rebuild(name, kwargs, path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise DataError(f"{path}: its tensors cannot be read ({err})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise DataError(f"{path} does not fit model {name}: {str(err).splitlines()[-1].strip()}") from None
    return model.eval(), meta


def inference_pipeline(path: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """What a skeleton data module's ``inference_meta`` records (``test_transforms``, ``clip_len``,
    ``max_frames``): from the checkpoint, else from the ``config.yaml`` of a run saved before
    checkpoints held it; ``None`` when neither has it."""
    data = meta.get("data")
    if isinstance(data, dict) and "test_transforms" in data:
        return data
    config = saved_config(path)
    if not config:
        return None
    saved = config.get("data") or {}
    return {
        "test_transforms": saved.get("test_transforms"),
        "clip_len": (config.get("eval") or {}).get("clip_len"),
        "max_frames": saved.get("max_frames"),
    }


def saved_config(path: Path) -> dict[str, Any]:
    """The raw ``config.yaml`` saved beside the weights (``{}`` when there is none)."""
    import yaml

    config = (path if path.is_dir() else path.parent) / "config.yaml"
    if not config.is_file():
        return {}
    try:
        raw = yaml.safe_load(config.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{config} is not valid YAML ({err})") from None
    return raw if isinstance(raw, dict) else {}
