"""Reading weights files and loading them into models: the one home of weight I/O, below the
model families and above nothing but torch and safetensors (the role of timm's ``_helpers.py`` and
``_builder.py``).

A weights file is data: safetensors, or a torch file read with ``weights_only=True``, so nothing in
it can run code. What the engine adds on top (the model description in a trained model's metadata,
atomic checkpoint writes) lives in :mod:`lightact.engine.checkpoint`.

Loading goes through three steps, each reported (:class:`LoadReport`):

1. **Read**: the tensors of a plain state dict, or of the entry a training checkpoint nests them
   under (``state_dict``, ``model``, ``module``; EMA copies on request or when they are all there is).
2. **Convert**: the file's layout is recognised from its keys (:func:`detect_layout`, never from the
   file name) and the model family converts it (``adapt_state_dict``: original Swin, the authors' TPS,
   ST-GCN of three codebases); timm models use timm's own ``checkpoint_filter_fn``.
3. **Match**: every learnt tensor of the model must come from the file, except a classifier head the
   file has in another size (or not at all). Anything else left at its initial value, or of the wrong
   shape, is an error naming the keys and describing the file, unless ``strict=False``.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

__all__ = [
    "LAYOUTS",
    "WEIGHTS_FILE",
    "Conversion",
    "LoadReport",
    "WeightsFile",
    "WeightsMismatchError",
    "classifier_keys",
    "clean_state_dict",
    "detect_layout",
    "file_arguments",
    "inspect_weights",
    "load_pretrained",
    "match_weights",
    "read_state_dict",
    "read_weights",
    "resolve_weights_path",
]

WEIGHTS_FILE = "model.safetensors"  # what a training run leaves in its work directory

# Prefixes that training wrappers put before the model's own keys: Lightning's ``model.`` (the
# module's attribute) and DDP's / DataParallel's ``module.``.
_WRAPPER_PREFIXES = ("model.", "module.")
# Where checkpoints nest the weights (Lightning, timm, MMAction2/mmengine, torchvision references) ...
_ENTRIES = ("state_dict", "model", "module")
# ... and their exponential-moving-average copies (timm, mmengine, common training scripts).
_EMA_ENTRIES = ("state_dict_ema", "model_ema", "ema_state_dict", "ema")

# What each recognised layout is, in the words of ``lightact weights inspect``.
LAYOUTS: dict[str, str] = {
    "swin-timm": "timm Swin (2D): patch merging at the start of stages 1.., classifier head.fc",
    "swin-original": "original (Microsoft) Swin (2D): patch merging at the end of each stage, head",
    "tps-official": (
        "the authors' TPS (MartinXM/TPS, mmaction): backbone., cls_head.fc_cls, 3-D bias tables "
        "in every block, patch merging at the end of each stage"
    ),
    "swin3d-mmaction": (
        "a 3-D Swin in mmaction layout without its index buffers (the authors' TPS, or Video Swin)"
    ),
    "lightact-pst": "lightact PST (Conv3d patch embedding, timm's patch-merging placement)",
    "stgcn-original": "ST-GCN of the original code (yysijie/st-gcn, also MMAction2 0.x): st_gcn_networks",
    "stgcn-mmaction2": "ST-GCN of MMAction2 1.x: backbone.gcn.i.{gcn,tcn}, cls_head.fc",
    "stgcn-pyskl": "ST-GCN of pyskl: backbone.gcn.i.{gcn,tcn}, cls_head.fc_cls",
    "stgcn-mmaction": "ST-GCN backbone of MMAction2 1.x or pyskl (no classifier in the file)",
    "lightact-stgcn": "lightact ST-GCN",
    "generic": "keys as the model's own code saves them (timm, torchvision or lightact)",
}


class WeightsMismatchError(ValueError):
    """A weights file that would leave learnt tensors of the model at their initial values."""


# ----------------------------------------------------------------------------- reading


@dataclass
class WeightsFile:
    """The tensors of a weights file and where in the file they came from."""

    path: Path
    format: str  # "safetensors" or "torch"
    entry: str | None  # the nested entry the tensors came from; None for a plain state dict
    other_entries: tuple[str, ...]  # other dictionaries of tensors in the file (e.g. an EMA copy)
    state: dict[str, Tensor]

    @property
    def num_parameters(self) -> int:
        return sum(v.numel() for v in self.state.values() if v.is_floating_point())

    def sample_keys(self) -> list[str]:
        """Key names worth showing: tensors with values (not counters such as num_batches_tracked)."""
        shown = [k for k, v in self.state.items() if v.dim() > 0]
        return shown or list(self.state)

    def describe(self, keys: int = 3) -> str:
        """One line: where the tensors came from, their layout, count, and a few key names."""
        where = f"entry {self.entry!r} of a {self.format} file" if self.entry else f"{self.format} state dict"
        names = self.sample_keys()
        names = ", ".join(names if len(names) <= keys else [*names[: keys - 1], "...", names[-1]])
        return (
            f"{where}, layout {detect_layout(self.state)}, {len(self.state)} tensors "
            f"({self.num_parameters / 1e6:.2f} M values), keys like {names}"
        )


def resolve_weights_path(work_dir_or_file: str | Path) -> Path:
    """A work directory's ``model.safetensors``, or the file itself; an error when there is none."""
    path = Path(work_dir_or_file)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no model weights at {path}")
    return path


def _harmless_numpy() -> list:
    """numpy scalars and arrays of numbers, which training checkpoints keep in their metadata
    (MMAction2's best score, epochs): rebuilding them runs no code of the file's choosing. Both
    spellings of numpy's core module are mapped, so numpy 2 files read under numpy 1 and back."""
    import importlib

    import numpy as np

    multiarray = None
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            multiarray = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(multiarray, "scalar"):
            break
    scalar, reconstruct = multiarray.scalar, multiarray._reconstruct
    allowed: list = [np.dtype, np.ndarray]
    for module in ("numpy.core", "numpy._core"):
        allowed += [
            (scalar, f"{module}.multiarray.scalar"),
            (reconstruct, f"{module}.multiarray._reconstruct"),
        ]
    allowed += [getattr(np.dtypes, n) for n in dir(getattr(np, "dtypes", None)) if n.endswith("DType")]
    return allowed


def _torch_load(path: Path) -> object:
    try:
        with torch.serialization.safe_globals(_harmless_numpy()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for foreign or unsafe files
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - not even a torch archive
            unsafe = []
        if unsafe:
            raise ValueError(
                f"{path} holds Python objects lightact will not unpickle ({', '.join(unsafe[:4])}): "
                "save its state_dict alone (torch.save(checkpoint['state_dict'], ...)) or convert it "
                "to safetensors"
            ) from None
        raise ValueError(
            f"{path} cannot be read as plain weights ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "convert it to safetensors"
        ) from None


def _is_state_dict(value: object) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, Tensor) for v in value.values())


def read_weights(path: str | Path, entry: str | None = None) -> WeightsFile:
    """A user's weights file: safetensors, or a torch file read without unpickling code. A lightact
    work directory gives its trained model. Checkpoints that nest the weights (``state_dict``,
    ``model``, ``module``: Lightning, timm, MMAction2) are unwrapped; an EMA copy (``state_dict_ema``,
    ``model_ema``, ``ema_state_dict``, ``ema``) is read when ``entry`` names it or it is all there is."""
    path = Path(path)
    if path.is_dir():
        path = resolve_weights_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{path} is not a readable safetensors file ({err})") from None
        if entry is not None:
            raise ValueError(f"{path}: a safetensors file has no entries (asked for {entry!r})")
        return WeightsFile(path, "safetensors", None, (), state)
    content = _torch_load(path)
    if _is_state_dict(content):
        if entry is not None:
            raise ValueError(f"{path} is a plain state dict without entries (asked for {entry!r})")
        return WeightsFile(path, "torch", None, (), content)
    if not isinstance(content, dict):
        raise ValueError(f"{path} does not hold a dictionary of tensors (found {type(content).__name__})")
    chosen, outer = content, []
    while isinstance(chosen, dict) and not _is_state_dict(chosen):
        nested = {k: v for k, v in chosen.items() if isinstance(k, str) and isinstance(v, dict)}
        if entry is not None and entry in nested:
            name = entry
        else:
            name = next((k for k in (*_ENTRIES, *_EMA_ENTRIES) if k in nested), None)
        if name is None:
            found = ", ".join(map(str, list(chosen)[:6])) or "nothing"
            raise ValueError(f"{path} does not hold a dictionary of tensors (its entries: {found})")
        outer.append(name)
        others = tuple(k for k in nested if k != name and _is_state_dict(nested[k]))
        chosen = nested[name]
    if entry is not None and entry not in outer:
        raise ValueError(f"{path} has no entry {entry!r} (it nests its weights under {'/'.join(outer)})")
    return WeightsFile(path, "torch", "/".join(outer), others, chosen)


def read_state_dict(path: str | Path, entry: str | None = None) -> dict[str, Tensor]:
    """The tensors of :func:`read_weights`."""
    return read_weights(path, entry).state


def clean_state_dict(state: dict[str, Tensor], own_keys: Iterable[str] | None = None) -> dict[str, Tensor]:
    """``state`` with a training wrapper's key prefix (``model.``, ``module.``) removed, once per key.

    With the model's own keys, a prefix the model itself uses is kept (a model may hold a ``model``
    or ``backbone`` attribute), and MMAction2's ``backbone.`` is removed too (its ``cls_head.`` stays
    for the family's conversion).
    """
    own = None if own_keys is None else list(own_keys)

    def used(prefix: str) -> bool:
        return own is not None and any(k.startswith(prefix) for k in own)

    prefixes = [p for p in _WRAPPER_PREFIXES if not used(p)]
    out = {next((k[len(p) :] for p in prefixes if k.startswith(p)), k): v for k, v in state.items()}
    if own is not None and not used("backbone.") and any(k.startswith("backbone.") for k in out):
        out = {k.removeprefix("backbone."): v for k, v in out.items()}
    return out


# ----------------------------------------------------------------------------- layouts


def detect_layout(state: dict[str, Tensor]) -> str:
    """The layout of a state dict, from its key names and shapes (a key of :data:`LAYOUTS`)."""
    keys = {k.removeprefix("backbone.") for k in clean_state_dict(state)}
    if any(k.startswith("st_gcn_networks.") for k in keys):
        return "stgcn-original"
    if any(re.match(r"gcn\.\d+\.gcn\.conv\.weight$", k) for k in keys):
        if any(k.startswith("cls_head.fc_cls.") for k in keys):
            return "stgcn-pyskl"
        if any(k.startswith("cls_head.fc.") for k in keys):
            return "stgcn-mmaction2"
        return "stgcn-mmaction"
    if "blocks.0.gcn.conv.weight" in keys:
        return "lightact-stgcn"
    if "layers.0.blocks.0.attn.qkv.weight" in keys:
        embed = next((v for k, v in state.items() if k.endswith("patch_embed.proj.weight")), None)
        # Microsoft's code merges patches at the end of stage 0, timm's never there; without any
        # patch merging, its classifier (head, not timm's head.fc) still tells them apart.
        end_of_stage = "layers.0.downsample.reduction.weight" in keys or (
            "head.weight" in keys and not any(".downsample." in k for k in keys)
        )
        if any(k.endswith("relative_position_index_old") for k in keys):
            return "tps-official"
        if embed is not None and embed.dim() == 5:
            return "swin3d-mmaction" if end_of_stage else "lightact-pst"
        return "swin-original" if end_of_stage else "swin-timm"
    return "generic"


@dataclass
class Conversion:
    """What a model's ``adapt_state_dict`` did with a file: ``notes`` (what was converted) and
    ``problems`` (what keeps the model from being the file's model; errors when loading strictly)."""

    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _timm_filter(model: nn.Module, state: dict[str, Tensor], conversion: Conversion) -> dict[str, Tensor]:
    """timm's own conversion of original checkpoints (``checkpoint_filter_fn`` of the model's module:
    Microsoft Swin, DeiT, ConvNeXt ...), the function timm applies to the files it downloads."""
    module = sys.modules.get(type(model).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is None:
        return state
    try:
        out = filter_fn(dict(state), model)
    except Exception as err:  # noqa: BLE001 - a filter that does not apply to this file: keep it as it is
        conversion.notes.append(f"timm's {module.__name__}.checkpoint_filter_fn did not apply ({err})")
        return state
    renamed = len(set(state) - set(out))
    if renamed or any(out[k].shape != state[k].shape for k in out if k in state):
        conversion.notes.append(
            f"converted by timm's {module.__name__}.checkpoint_filter_fn ({renamed} keys renamed or dropped)"
        )
    return out


def _adapt(model: nn.Module, state: dict[str, Tensor], conversion: Conversion) -> dict[str, Tensor]:
    if hasattr(model, "adapt_state_dict"):
        return model.adapt_state_dict(state, conversion)
    if type(model).__module__.startswith("timm."):
        return _timm_filter(model, state, conversion)
    return state


# ----------------------------------------------------------------------------- matching


def classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the model's classifier: timm's ``get_classifier()``, else a ``head``
    module, else the last linear or convolution layer (torchvision's ``fc``, ``classifier.1``)."""
    head = None
    if callable(getattr(model, "get_classifier", None)):
        head = model.get_classifier()
    if not isinstance(head, nn.Module):
        head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
        head = layers[-1] if layers else None
    if head is None:
        return set()
    name = next((n for n, m in model.named_modules() if m is head), None)
    if not name:
        return set()
    return {f"{name}.{k}" for k in head.state_dict()}


def _learnt_keys(model: nn.Module) -> set[str]:
    """Keys a file must provide: parameters and normalisation statistics. Other buffers (a graph
    built from the joint layout, index tables) are computed by the model and taken from the file
    only when it has them."""
    stats = {k for k, _ in model.named_buffers() if k.endswith(("running_mean", "running_var"))}
    return {k for k, _ in model.named_parameters()} | stats


@dataclass
class LoadReport:
    """How a weights file maps onto a model (nothing in it is loaded until :func:`load_pretrained`)."""

    file: WeightsFile
    model_name: str
    layout: str
    conversion: Conversion
    fitting: dict[str, Tensor]  # converted tensors that fit the model by name and shape
    missing: list[str]  # learnt tensors of the model that the file does not provide
    shape_mismatch: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (key, file, model)
    head: list[str]  # classifier tensors that start fresh (the file's head has another size, or none)
    unexpected: list[str]  # tensors of the file the model has no place for
    computed: list[str]  # buffers the model computes itself and the file does not have

    @property
    def problems(self) -> bool:
        return bool(self.missing or self.shape_mismatch or self.conversion.problems)

    def problem_lines(self, limit: int | None = 10) -> list[str]:
        """What keeps the model from being the file's, at most ``limit`` keys per kind (None: all)."""
        lines = list(self.conversion.problems)
        if self.missing:
            lines.append(f"{len(self.missing)} tensors not in the file: {_listed(self.missing, limit)}")
        if self.shape_mismatch:
            shapes = [f"{k} (file {list(a)}, model {list(b)})" for k, a, b in self.shape_mismatch]
            lines.append(f"{len(shapes)} of another shape: {_listed(shapes, limit)}")
        return lines

    def message(self) -> str:
        """One line: which tensors would stay at their initial values, and what the file looked like."""
        return (
            f"{self.file.path}: {self.model_name} would keep tensors at their initial values: "
            f"{'; '.join(self.problem_lines())}. The file: {self.file.describe()}. "
            f"`lightact weights inspect {self.file.path} --model {self.model_name}` lists everything; "
            "model.weights_strict: false loads it anyway"
        )

    def lines(self) -> list[str]:
        """The full account, as ``lightact weights inspect --model`` prints it."""
        out = [f"{len(self.fitting)} tensors load into {self.model_name}"]
        out += [f"converted: {note}" for note in self.conversion.notes]
        if self.head:
            out.append(
                f"starts fresh (classifier of another size, or none in the file): {', '.join(self.head)}"
            )
        out += [f"PROBLEM: {line}" for line in self.problem_lines(limit=None)]
        if self.computed:
            out.append(f"computed by the model, not in the file: {', '.join(self.computed)}")
        if self.unexpected:
            out.append(f"unused from the file: {_listed(self.unexpected, 20)}")
        return out


def _listed(items: list[str], limit: int | None) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if limit is not None and len(items) > limit else "")


def match_weights(model: nn.Module, file: WeightsFile, model_name: str | None = None) -> LoadReport:
    """Convert ``file`` for ``model`` and match it tensor by tensor, without loading anything."""
    model_name = model_name or type(model).__name__
    own = model.state_dict()
    layout = detect_layout(file.state)
    conversion = Conversion()
    state = _adapt(model, clean_state_dict(file.state, own), conversion)
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    head = classifier_keys(model)
    learnt = _learnt_keys(model)
    absent = sorted(k for k in own if k not in state)
    mismatched = sorted(
        (k, tuple(state[k].shape), tuple(own[k].shape)) for k in state if k in own and k not in fitting
    )
    return LoadReport(
        file=file,
        model_name=model_name,
        layout=layout,
        conversion=conversion,
        fitting=fitting,
        missing=[k for k in absent if k in learnt and k not in head],
        shape_mismatch=[m for m in mismatched if m[0] not in head],
        head=sorted(k for k in head if k not in fitting),
        unexpected=sorted(k for k in state if k not in own),
        computed=[
            k for k in absent if k not in learnt and k not in head and not k.endswith("num_batches_tracked")
        ],
    )


def load_pretrained(
    model: nn.Module,
    path: str | Path,
    *,
    strict: bool = True,
    entry: str | None = None,
    head_may_differ: bool = True,
    model_name: str | None = None,
) -> LoadReport:
    """Initialise ``model`` from a user's weights file; returns the :class:`LoadReport`.

    ``strict``: a learnt tensor the file does not provide (or provides in another shape) is a
    :class:`WeightsMismatchError` naming the keys and describing the file, except the classifier
    head when ``head_may_differ`` (fine-tuning to another label set); ``strict=False`` loads what
    fits and leaves the report to the caller. A file of which nothing fits is always an error.
    """
    file = read_weights(path, entry)
    report = match_weights(model, file, model_name)
    if not head_may_differ and report.head:
        report.missing = sorted({*report.missing, *report.head})
        report.head = []
    if not report.fitting:
        raise ValueError(
            f"no tensor in {file.path} fits model {report.model_name}: is it another model's? "
            f"(the file: {file.describe()})"
        )
    if strict and report.problems:
        raise WeightsMismatchError(report.message())
    model.load_state_dict(report.fitting, strict=False)
    return report


# ----------------------------------------------------------------------------- inspection

# Classifier weights by layout family, for the number of classes a file was trained on.
_HEADS = (
    "head.weight",
    "head.fc.weight",
    "cls_head.fc_cls.weight",
    "cls_head.fc.weight",
    "fcn.weight",
    "fc.weight",
)
_JOINTS = {25: "ntu25", 17: "coco17", 18: "openpose18", 33: "mediapipe33"}


def file_arguments(state: dict[str, Tensor], layout: str) -> dict[str, object]:
    """Constructor arguments the file's shapes imply (classes, joints, frames, index), so that a
    registered model can be checked against it; the architecture itself (width, depth) is not
    inferred: that is what tells the variants apart."""
    state = {k.removeprefix("backbone."): v for k, v in clean_state_dict(state).items()}
    args: dict[str, object] = {}
    head = next((state[k] for k in _HEADS if k in state and state[k].dim() in (2, 4)), None)
    if head is not None:
        args["num_classes"] = int(head.shape[0])
    if layout.startswith(("stgcn", "lightact-stgcn")):
        conv = next(
            (
                v
                for k, v in state.items()
                if re.fullmatch(r"(blocks|st_gcn_networks|gcn)\.0\.gcn\.conv\.weight", k)
            ),
            None,
        )
        graph = next((v for k, v in state.items() if k == "A" or k.endswith(".gcn.A")), None)
        if conv is not None and graph is not None:
            channels, joints = int(conv.shape[1]), int(graph.shape[-1])
            args.update(in_channels=channels, layout=_JOINTS.get(joints, f"<a {joints}-joint layout>"))
            bn = state.get("data_bn.weight")
            if bn is None:
                args["data_bn"] = "none"
            elif bn.numel() != channels * joints:
                args.update(data_bn="MVC", num_person=bn.numel() // (channels * joints))
            importance = ("edge_importance.0", "blocks.0.edge_importance", "gcn.0.gcn.PA")
            args["edge_importance"] = any(k in state for k in importance)
    elif layout in ("tps-official", "swin3d-mmaction", "lightact-pst"):
        embed = state.get("patch_embed.proj.weight")
        index = state.get("layers.0.blocks.1.attn.relative_position_index")
        if embed is not None and index is not None and index.dim() == 3:
            args["num_frames"] = int(index.shape[0]) * int(embed.shape[2])
        if embed is not None:
            args["tubelet_size"] = int(embed.shape[2])
        if layout != "lightact-pst":
            args["bias_index"] = "official"
    return args


def _build(name: str, args: dict[str, object], device: str) -> nn.Module:
    from lightact.models.registry import create_model

    with torch.device(device):
        return create_model(name, **_taken(name, args)).eval()


def _taken(name: str, args: dict[str, object]) -> dict[str, object]:
    """The ``args`` the constructor of model ``name`` takes."""
    from lightact.models.registry import model_entry

    entry = model_entry(name)
    return {k: v for k, v in args.items() if entry.takes(k)}


def _candidates(layout: str) -> list[str]:
    """Registered models a file of ``layout`` may belong to: lightact's video models for Swin
    layouts, ``stgcn`` for ST-GCN ones, every lightact model and torchvision video model otherwise."""
    from lightact.models.registry import list_models

    if layout.startswith(("stgcn", "lightact-stgcn")):
        return ["stgcn"]
    if layout in LAYOUTS and layout != "generic":
        return list_models("video")
    from torchvision.models import video

    builders = sorted(
        n for n in dir(video) if n.islower() and not n.startswith("_") and callable(getattr(video, n))
    )
    return [*list_models(), *(f"tv/{n}" for n in builders if n not in ("get_model", "get_weight"))]


def _fits(file: WeightsFile, layout: str) -> list[tuple[str, dict[str, object], int, int, bool]]:
    """(model, arguments, fitting, learnt, fits) for every candidate, built on the meta device
    (shapes without memory: a file cannot make this allocate)."""
    args = file_arguments(file.state, layout)
    out = []
    for name in _candidates(layout):
        try:
            model = _build(name, args, "meta")
        except Exception:  # noqa: BLE001 - arguments this model does not take in this form
            continue
        with warnings.catch_warnings():  # trial conversions (timm's table resizing) of models that do not fit
            warnings.simplefilter("ignore")
            report = match_weights(model, file, name)
        learnt = _learnt_keys(model) - classifier_keys(model)
        fitting = len(learnt & set(report.fitting))
        out.append((name, args, fitting, len(learnt), not report.problems))
    return sorted(out, key=lambda r: (not r[4], -r[2] / max(r[3], 1), r[0]))


def _lightact_meta(file: WeightsFile) -> dict | None:
    if file.format != "safetensors":
        return None
    from lightact.engine.checkpoint import read_meta

    try:
        return read_meta(file.path)
    except ValueError:
        return None


def inspect_weights(
    path: str | Path,
    model_name: str | None = None,
    overrides: dict[str, object] | None = None,
    entry: str | None = None,
) -> list[str]:
    """What ``lightact weights inspect`` prints: the file (format, entry, tensors, values, layout),
    the registered models it fits by shapes, and for ``model_name`` (built on the CPU with the
    arguments the file implies and ``overrides``) what would be converted, loaded, left fresh."""
    file = read_weights(path, entry)
    layout = detect_layout(file.state)
    meta = _lightact_meta(file)
    lines = [
        f"file: {file.path} ({file.format}" + (f", entry {file.entry!r}" if file.entry else "") + ")",
        f"tensors: {len(file.state)}, {file.num_parameters:,} values ({file.num_parameters / 1e6:.2f} M)",
        f"layout: {layout}: {LAYOUTS[layout]}",
        "keys: " + ", ".join(f"{k} {list(file.state[k].shape)}" for k in file.sample_keys()[:4]) + ", ...",
    ]
    if file.other_entries:
        lines.append(f"other entries: {', '.join(file.other_entries)} (read one with --entry)")
    if meta is not None:
        lines.append(
            f"written by lightact: model {meta.get('model')}, {len(meta.get('classes') or [])} classes"
        )
    if model_name is None:
        fits = _fits(file, layout)
        full = [f for f in fits if f[4]]
        for name, args, fitting, learnt, _ in full:
            shown = {k: v for k, v in args.items() if k != "num_classes"}
            extra = ", ".join(f"{k}={v}" for k, v in shown.items())
            lines.append(
                f"fits: {name}" + (f" with {extra}" if extra else "") + f" ({fitting} of {learnt} tensors)"
            )
        if not full:
            best = ", ".join(f"{n} ({f} of {t} tensors)" for n, _, f, t, _ in fits[:3])
            lines.append(f"fits: no registered model entirely; closest: {best or 'none'}")
        if "num_classes" in file_arguments(file.state, layout):
            lines.append(f"classifier: {file_arguments(file.state, layout)['num_classes']} classes")
        lines.append("check one model in detail (conversion, what stays fresh): --model NAME")
        if layout == "generic":
            lines.append("timm models are not searched: pass --model timm/<name>")
        return lines
    args = {**file_arguments(file.state, layout), **(overrides or {})}
    if meta is not None and meta.get("model") == model_name:
        args = {**meta.get("kwargs", {}), **(overrides or {})}
        if isinstance(args.get("layout"), dict):
            from lightact.data.skeleton.layouts import Layout

            args["layout"] = Layout.from_dict(args["layout"])
    model = _build(model_name, args, "cpu")
    report = match_weights(model, file, model_name)
    used = _taken(model_name, args)
    shown = ", ".join(f"{k}={getattr(v, 'name', v)}" for k, v in used.items())  # a Layout by its name
    lines.append(f"model: {model_name}" + (f" ({shown})" if shown else ""))
    lines += report.lines()
    lines.append(
        "verdict: "
        + ("loads strictly" if not report.problems else "refused unless model.weights_strict: false")
    )
    return lines
