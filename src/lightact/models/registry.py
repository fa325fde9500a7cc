"""Model registry: each family file registers its variants by name (timm style)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    modality: str  # "skeleton", "video", "image" or "longvideo"
    input_format: str  # how the data module must collate: "packed"/"padded" skeletons, "clip", "image", ...
    description: str
    external: bool = False  # built by timm or torchvision from a ``timm/`` or ``tv/`` name


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, modality: str, input_format: str, description: str = ""):
    """Decorator that registers a factory ``f(**kwargs) -> nn.Module`` under ``name``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = description or (factory.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = ModelEntry(name, factory, modality, input_format, doc)
        return factory

    return wrap


# lightact's model families; importing one runs its @register_model decorators.
_FAMILIES = ("composite", "star", "stgcn", "tps", "stan")


def _load_families() -> None:
    for family in _FAMILIES:
        importlib.import_module(f"lightact.models.{family}")


def _timm_model(name: str, **kwargs) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


def _torchvision_video_model(name: str, **kwargs) -> nn.Module:
    from torchvision.models import video

    kwargs.pop("num_frames", None)  # the data module's argument; these models take any length
    kwargs.pop("img_size", None)
    return getattr(video, name)(weights=None, **kwargs)


def _external_entry(name: str) -> ModelEntry | None:
    """``timm/<name>`` (images) and ``tv/<name>`` (torchvision video models), random weights."""
    prefix, _, model = name.partition("/")
    if prefix == "timm":
        import timm

        if not timm.is_model(model):
            raise KeyError(f"timm has no model {model!r}")
        factory = partial(_timm_model, model)
        return ModelEntry(name, factory, "image", "image", f"timm {model}", external=True)
    if prefix == "tv":
        from torchvision.models import video

        if not callable(getattr(video, model, None)) or model.startswith("_"):
            raise KeyError(f"torchvision.models.video has no model {model!r}")
        factory = partial(_torchvision_video_model, model)
        return ModelEntry(name, factory, "video", "clip", f"torchvision {model}", external=True)
    return None


def list_models(modality: str | None = None) -> list[str]:
    _load_families()
    return sorted(n for n, e in _REGISTRY.items() if modality is None or e.modality == modality)


def model_entry(name: str) -> ModelEntry:
    _load_families()
    external = _external_entry(name)
    if external is not None:
        return external
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model (or ``timm/<name>``, ``tv/<name>``) with random weights.
    Keyword arguments go to its constructor."""
    return model_entry(name).factory(**kwargs)
