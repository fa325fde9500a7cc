"""Model registry: each family file registers its variants by name (timm style)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    modality: str  # "skeleton", "video", "image" or "longvideo"
    input_format: str  # how the data module must collate: "packed" or "padded" for skeletons
    description: str


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


def _load_families() -> None:
    # Importing the family modules runs their @register_model decorators.
    from lightact.models import composite, star, stgcn  # noqa: F401


def list_models(modality: str | None = None) -> list[str]:
    _load_families()
    return sorted(n for n, e in _REGISTRY.items() if modality is None or e.modality == modality)


def model_entry(name: str) -> ModelEntry:
    _load_families()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model with random weights. Keyword arguments go to its constructor."""
    return model_entry(name).factory(**kwargs)
