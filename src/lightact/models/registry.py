"""Model registry: each family file registers its variants by name with their spec (timm style).

A variant is a factory ``f(**kwargs) -> Model`` whose return annotation names the model class: its
constructor's arguments (``accepts``) and their types are read once, when the variant registers.
``timm/<name>`` and ``tv/<name>`` resolve to models of those libraries, described the same way.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache, partial
from types import MappingProxyType
from typing import Any

from pydantic import TypeAdapter, ValidationError
from torch import Tensor, nn

from lightact.errors import UnknownNameError
from lightact.models.spec import (
    CLIP_INPUT,
    IMAGE_INPUT,
    ExportTarget,
    ModelSpec,
    clip_export,
    image_export,
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    spec: ModelSpec
    description: str
    # Constructor arguments in signature order; None when an external model's class is unknown.
    accepts: tuple[str, ...] | None
    hints: Mapping[str, Any]  # constructor argument -> type annotation (lightact models)
    external: bool = False  # built by timm or torchvision from a ``timm/`` or ``tv/`` name

    @property
    def modality(self) -> str:
        return self.spec.modality

    @property
    def input_format(self) -> str:
        return self.spec.input_format

    def takes(self, argument: str) -> bool:
        """Whether the constructor takes ``argument`` (assumed so when its class is unknown)."""
        return self.accepts is None or argument in self.accepts

    def data_arguments(self, offered: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments this model takes from what a data module ``offered``."""
        return {k: offered[k] for k in self.spec.data_args if k in offered}

    def example_input(
        self, model: nn.Module, batch: int, shape: tuple[int, ...] | None = None
    ) -> tuple[Tensor, ...]:
        return self.spec.example_input(model, batch, shape)

    def export_target(self, model: nn.Module) -> ExportTarget:
        return self.spec.export_target(model)


def constructor_arguments(model_class: type) -> tuple[tuple[str, ...], bool]:
    """Named constructor arguments of ``model_class`` and whether that list is complete: a
    constructor that passes ``**kwargs`` on is followed into its base classes' constructors."""
    names: list[str] = []
    for klass in model_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [
            p.name
            for p in params
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in names
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return tuple(names), True
    return tuple(names), False


def _returned_class(factory: Callable[..., nn.Module]) -> type | None:
    model_class = typing.get_type_hints(factory).get("return")
    return model_class if isinstance(model_class, type) and issubclass(model_class, nn.Module) else None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, spec: ModelSpec, *, description: str = ""):
    """Decorator that registers a factory ``f(**kwargs) -> Model`` under ``name`` with its spec.
    The factory's return annotation must name the model class."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        model_class = _returned_class(factory)
        if model_class is None:
            raise TypeError(f"model {name!r}: its factory must annotate the model class it returns")
        accepts, _ = constructor_arguments(model_class)
        undeclared = [a for a in spec.data_args if a not in accepts]
        if undeclared:
            raise TypeError(f"model {name!r}: {model_class.__name__} takes no {', '.join(undeclared)}")
        hints = MappingProxyType(typing.get_type_hints(model_class.__init__))
        doc = description or (factory.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = ModelEntry(name, factory, spec, doc, accepts, hints)
        return factory

    return wrap


# lightact's model families; importing one runs its @register_model decorators.
_FAMILIES = ("clip3d", "composite", "star", "stgcn", "tps", "stan")


def _load_families() -> None:
    for family in _FAMILIES:
        importlib.import_module(f"lightact.models.{family}")


def _timm_model(name: str, **kwargs) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


def _torchvision_video_model(name: str, **kwargs) -> nn.Module:
    from torchvision.models import video

    return getattr(video, name)(weights=None, **kwargs)


def _timm_class(entrypoint: Callable[..., nn.Module]) -> type | None:
    """The class a timm entry point builds: its return annotation, or the one model class its module
    exports (a few entry points are not annotated)."""
    model_class = _returned_class(entrypoint)
    if model_class is not None:
        return model_class
    module = sys.modules[entrypoint.__module__]
    exported = [getattr(module, n, None) for n in getattr(module, "__all__", ())]
    classes = [c for c in exported if isinstance(c, type) and issubclass(c, nn.Module)]
    return classes[0] if len(classes) == 1 else None


# What image and clip data offer that external models may take, besides the number of classes.
_IMAGE_SPEC = ModelSpec("image", "image", ("num_classes", "img_size"), IMAGE_INPUT, image_export)
_CLIP_SPEC = ModelSpec("video", "clip", ("num_classes", "num_frames", "img_size"), CLIP_INPUT, clip_export)


def _external(
    name: str, factory: Callable[..., nn.Module], model_class: type | None, spec: ModelSpec, what: str
):
    accepts = constructor_arguments(model_class)[0] if model_class is not None else None
    # The number of classes always reaches the model (timm's and torchvision's builders pass it on).
    data_args = tuple(
        a for a in spec.data_args if a == "num_classes" or (accepts is not None and a in accepts)
    )
    spec = replace(spec, data_args=data_args)
    return ModelEntry(name, factory, spec, what, accepts, MappingProxyType({}), external=True)


@cache
def _external_entry(name: str) -> ModelEntry | None:
    """``timm/<name>`` (images) and ``tv/<name>`` (torchvision video models), random weights."""
    prefix, _, model = name.partition("/")
    if prefix == "timm":
        import timm

        if not timm.is_model(model):
            raise UnknownNameError(f"timm has no model {model!r}")
        model_class = _timm_class(timm.models.model_entrypoint(model))
        return _external(name, partial(_timm_model, model), model_class, _IMAGE_SPEC, f"timm {model}")
    if prefix == "tv":
        from torchvision.models import video

        builder = getattr(video, model, None)
        if not callable(builder) or model.startswith("_"):
            raise UnknownNameError(f"torchvision.models.video has no model {model!r}")
        factory = partial(_torchvision_video_model, model)
        return _external(name, factory, _returned_class(builder), _CLIP_SPEC, f"torchvision {model}")
    return None


@dataclass(frozen=True)
class ExternalFamily:
    """Models another library builds, named ``<prefix>/<its name>``."""

    prefix: str
    spec: ModelSpec
    description: str

    @property
    def pattern(self) -> str:
        return f"{self.prefix}/<name>"


EXTERNAL_FAMILIES = (
    ExternalFamily(
        "timm",
        _IMAGE_SPEC,
        "any timm image model by its timm name, e.g. timm/vit_tiny_patch16_224, timm/convnext_atto "
        "(random weights; yours with model.weights)",
    ),
    ExternalFamily(
        "tv",
        _CLIP_SPEC,
        "torchvision's video models, e.g. tv/r3d_18, tv/r2plus1d_18, tv/mvit_v2_s, tv/swin3d_t "
        "(random weights)",
    ),
)


def external_names(prefix: str) -> list[str]:
    """Every model name of the external family ``prefix`` (imports that library)."""
    if prefix == "timm":
        import timm

        return [f"timm/{name}" for name in timm.list_models()]
    if prefix == "tv":
        import torchvision
        from torchvision.models import video

        return [f"tv/{name}" for name in sorted(torchvision.models.list_models(module=video))]
    raise KeyError(
        f"no external model family {prefix!r}; known: {', '.join(f.prefix for f in EXTERNAL_FAMILIES)}"
    )


def list_models(modality: str | None = None) -> list[str]:
    _load_families()
    return sorted(n for n, e in _REGISTRY.items() if modality is None or e.modality == modality)


def model_entry(name: str) -> ModelEntry:
    _load_families()
    external = _external_entry(name)
    if external is not None:
        return external
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model (or ``timm/<name>``, ``tv/<name>``) with random weights.
    Keyword arguments go to its constructor."""
    return model_entry(name).factory(**kwargs)


# Words of constructor arguments that make a library read a file, fetch a download or choose
# pretrained weights: timm's ``checkpoint_path``, ``pretrained_cfg(_overlay)``, ``cache_dir``,
# torchvision's ``weights``, our composite's ``pretrained_backbone``. Neither a config nor a
# checkpoint's description may set them: what is loaded is named by the user, on the command line.
_LOADING_WORDS = frozenset(
    {"pretrained", "checkpoint", "ckpt", "weights", "path", "file", "filename", "url", "uri", "hub",
     "download", "cache", "dir", "root", "repo", "overlay", "source"}
)  # fmt: skip
_MAX_INT = 1 << 20  # widths, classes, frames: far above any real model, far below a memory bomb
_MAX_DEPTH = 256  # blocks per stage: each is built in Python, one by one
_DEPTH_WORDS = frozenset({"depth", "depths", "layers", "blocks"})
_MAX_TEXT = 128
_MAX_ITEMS = 1024


def loading_argument(name: str) -> bool:
    """Whether a constructor argument named ``name`` would make the model load or fetch something."""
    words = set(name.lower().replace("drop_path", "droppath").split("_"))
    return bool(words & _LOADING_WORDS)


def _check_value(key: str, value: Any, nesting: int = 0) -> None:
    """A constructor argument from a file must be a plain value: a number, a bool, a short name
    (no path, URL or ``hf-hub:`` scheme: timm resolves such names by reading or downloading), or a
    short list of those."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        limit = _MAX_DEPTH if set(key.lower().split("_")) & _DEPTH_WORDS else _MAX_INT
        if abs(value) > limit:
            raise ValueError(f"{key}: {value} is out of range (at most {limit})")
        return
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            raise ValueError(f"{key}: {value} is not a finite number")
        return
    if isinstance(value, str):
        if len(value) > _MAX_TEXT or any(c in value for c in "/\\:") or value.startswith(("~", ".")):
            raise ValueError(
                f"{key}: {value[:60]!r} is not a plain name (paths, URLs and schemes are refused)"
            )
        return
    if isinstance(value, list | tuple) and nesting < 3:
        if len(value) > _MAX_ITEMS:
            raise ValueError(f"{key}: a list of {len(value)} values is too long")
        for item in value:
            _check_value(key, item, nesting + 1)
        return
    raise ValueError(f"{key}: a {type(value).__name__} is not a plain value")


def check_arguments(name: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse constructor arguments for model ``name`` that a config or a checkpoint's description
    may not choose: ones that load or fetch something (:func:`loading_argument`), values that are
    not plain (:func:`_check_value`), and for lightact's models, ones the constructor does not take
    or not of the declared type (timm's and torchvision's builders take open-ended keywords). A
    ``layout`` in its ``to_dict`` form is checked where it is read. Raises ``ValueError`` naming
    the argument."""
    entry = model_entry(name)
    for key, value in kwargs.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{key!r} is not an argument name")
        if loading_argument(key):
            raise ValueError(
                f"{key}: model arguments may not load or download anything (weights are given as "
                "model.weights, or are the checkpoint itself)"
            )
        if not entry.external and not entry.takes(key):
            raise ValueError(f"unknown argument {key!r} for model {name} (accepted: {list(entry.accepts)})")
        if key == "layout" and isinstance(value, dict):
            continue
        if key in entry.hints:
            try:
                TypeAdapter(entry.hints[key]).validate_python(value, strict=False)
            except ValidationError as err:
                raise ValueError(f"{key}: {err.errors()[0]['msg']} (got {value!r})") from None
        if key != "layout":
            _check_value(key, value)


# Weights saved before data modules passed only what a model takes record these for every video
# model, also those that ignored them (torchvision's, clip3d_tiny).
_FORMER_VIDEO_ARGUMENTS = ("num_frames", "img_size")


def saved_arguments(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded constructor arguments of a saved model that its constructor takes today."""
    entry = model_entry(name)
    return {k: v for k, v in kwargs.items() if k not in _FORMER_VIDEO_ARGUMENTS or entry.takes(k)}


def rebuild_model(name: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """Build a saved model from its recorded constructor arguments (random weights)."""
    return model_entry(name).factory(**saved_arguments(name, kwargs))
