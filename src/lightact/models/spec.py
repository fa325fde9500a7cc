"""What a model family declares beside its variants (timm's ``default_cfgs`` idea).

Each family file builds a :class:`ModelSpec` and hands it to ``@register_model`` with every variant
it covers:

* ``modality`` and ``input_format``: which data module feeds the model and how it collates;
* ``data_args``: the constructor arguments the data supplies (classes, channels, joint layout, clip
  length, image size, feature widths, ...); a data module offers what its data implies and the
  model receives the ones it declares;
* ``example_input``: the model's positional inputs for a batch of canonical samples (the benchmark
  input, and the contract test's);
* ``export``: how the model becomes an ONNX graph (the module to trace, its input, which axes stay
  dynamic), or why it cannot;
* ``efficiency_class``: its class in the efficiency study of lightweight video transformers
  (arXiv 2111.09641), for the benchmark's reports.

The module to trace and its input are an :class:`ExportTarget`; :mod:`lightact.export` traces and
verifies it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

# Classes of the efficiency study: a transformer on a CNN backbone, a transformer on patches or joints,
# self-attention blocks replacing convolutions inside a CNN (BoTNet, HaloNet, LambdaNet), and the
# convolutional baselines; "linear" for a model with neither.
COMPOSITE = "composite"
ATTENTION_ONLY = "attention-only"
STANDALONE = "stand-alone attention"
CONVOLUTION = "convolution"
LINEAR = "linear"
UNCLASSIFIED = "unclassified"
EFFICIENCY_CLASSES = (COMPOSITE, ATTENTION_ONLY, STANDALONE, CONVOLUTION, LINEAR, UNCLASSIFIED)


class ExportError(RuntimeError):
    """An export that did not produce a verified ONNX file."""


class NotExportable(ExportError):
    """The model (or the requested dynamic axes) cannot be exported; the message says why."""


def random_input(shape: tuple[int, ...], seed: int = 0) -> Tensor:
    """Standard-normal values of ``shape`` from their own seeded generator (the global RNG is left alone)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@dataclass
class ExportTarget:
    """The module to trace and its input: ``canonical`` is the example shape, ``axes`` maps each
    dimension that may be dynamic to its name, ``alternate`` gives a second size per axis name for
    the parity check on a differently shaped input.

    ``feeds`` is set when the exported module takes one sample per call (STAR's single-clip form):
    it splits the model's inputs for a batch into the exported module's calls.
    """

    module: nn.Module
    canonical: tuple[int, ...]
    axes: dict[int, str] = field(default_factory=dict)
    alternate: dict[str, int] = field(default_factory=dict)
    note: str = ""
    input_name: str = "x"
    output_name: str = "logits"
    feeds: Callable[[tuple[Tensor, ...]], list[Tensor]] | None = None

    @property
    def axis_names(self) -> list[str]:
        return list(self.axes.values())

    def shape(self, sizes: Mapping[str, int] | None = None) -> tuple[int, ...]:
        sizes = sizes or {}
        return tuple(sizes.get(self.axes.get(d, ""), n) for d, n in enumerate(self.canonical))

    def example(self, sizes: Mapping[str, int] | None = None, seed: int = 0) -> Tensor:
        return random_input(self.shape(sizes), seed)

    def alternate_sizes(self, dynamic: list[str]) -> dict[str, int]:
        return {name: self.alternate[name] for name in dynamic if name in self.alternate}

    def calls(self, inputs: tuple[Tensor, ...]) -> list[Tensor]:
        """The exported module's inputs, one per call, for the model's ``inputs`` of a batch."""
        return [inputs[0]] if self.feeds is None else self.feeds(inputs)


class ExampleInput:
    """A model's positional inputs for ``batch`` samples of its canonical shape, or of ``shape``
    (one sample's first input, the batch axis left out)."""

    def shape(self, model: nn.Module) -> tuple[int, ...]:
        """One canonical sample's first input, without the batch axis."""
        raise NotImplementedError

    def __call__(
        self, model: nn.Module, batch: int, shape: tuple[int, ...] | None = None
    ) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def describe(self, shape: tuple[int, ...]) -> str:
        """The sample ``shape`` for a report, e.g. ``3x300x25x2 (C x T x V x M)``."""
        return "x".join(map(str, shape))


@dataclass(frozen=True)
class BatchedInput(ExampleInput):
    """One input tensor ``[batch, *sample]``; ``sample(model)`` is the canonical sample shape and
    ``layout`` names its axes."""

    sample: Callable[[nn.Module], tuple[int, ...]]
    layout: str = ""

    def shape(self, model: nn.Module) -> tuple[int, ...]:
        return tuple(self.sample(model))

    def __call__(
        self, model: nn.Module, batch: int, shape: tuple[int, ...] | None = None
    ) -> tuple[Tensor, ...]:
        return (random_input((batch, *(shape or self.shape(model)))),)

    def describe(self, shape: tuple[int, ...]) -> str:
        text = super().describe(shape)
        return f"{text} ({self.layout})" if self.layout else text


# Clip models without a clip length or size of their own take 16 frames of 224 x 224 for the example.
CLIP_FRAMES, CLIP_SIZE = 16, 224


def _square(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


def clip_shape(model: nn.Module) -> tuple[int, ...]:
    """``(3, T, H, W)``: the clip length and size the model is built for (``num_frames``,
    ``img_size`` attributes), else 16 frames of 224 x 224."""
    frames = getattr(model, "num_frames", None) or CLIP_FRAMES
    return (3, frames, *_square(getattr(model, "img_size", CLIP_SIZE)))


CLIP_INPUT = BatchedInput(clip_shape)


def clip_export(model: nn.Module) -> ExportTarget:
    """A clip model ``[N, 3, T, H, W] -> logits``. The batch axis is dynamic, and so is the frame
    axis unless the model is built for a clip length (its position bias or shift pattern depends on
    it)."""
    fixed = getattr(model, "num_frames", None)
    _, frames, height, width = clip_shape(model)
    return ExportTarget(
        model,
        canonical=(1, 3, frames, height, width),
        axes={0: "batch"} if fixed else {0: "batch", 2: "frames"},
        alternate={"batch": 2} if fixed else {"batch": 2, "frames": 8},
        note=f"video clip x [N, 3, {fixed or 'T'}, {height}, {width}]",
    )


def image_shape(model: nn.Module) -> tuple[int, ...]:
    """``(3, H, W)``: the size the model is built for (its ``img_size``, or its patch embedding's for
    timm's transformers), else 224 x 224."""
    size = getattr(model, "img_size", None) or getattr(getattr(model, "patch_embed", None), "img_size", None)
    return (3, *_square(size or CLIP_SIZE))


IMAGE_INPUT = BatchedInput(image_shape)


def image_export(model: nn.Module) -> ExportTarget:
    """An image model ``[N, 3, H, W] -> logits`` with a dynamic batch."""
    return ExportTarget(
        model,
        canonical=(1, *IMAGE_INPUT.shape(model)),
        axes={0: "batch"},
        alternate={"batch": 2},
        note="image",
    )


@dataclass(frozen=True)
class ModelSpec:
    """What a family's variants declare; see the module docstring. ``export`` is a function of the
    built model giving its :class:`ExportTarget`, or the reason it cannot be exported."""

    modality: str  # "skeleton", "video", "image" or "longvideo"
    input_format: str  # how the data module collates: "packed"/"padded" skeletons, "clip", "image", ...
    data_args: tuple[str, ...]
    example_input: ExampleInput
    export: Callable[[nn.Module], ExportTarget] | str
    efficiency_class: str = UNCLASSIFIED

    def __post_init__(self) -> None:
        if self.efficiency_class not in EFFICIENCY_CLASSES:
            raise ValueError(
                f"efficiency class {self.efficiency_class!r} is not one of {', '.join(EFFICIENCY_CLASSES)}"
            )

    def export_target(self, model: nn.Module) -> ExportTarget:
        """The export target of a built model (put in eval mode); raises :class:`NotExportable`."""
        if isinstance(self.export, str):
            raise NotExportable(self.export)
        return self.export(model.eval())
