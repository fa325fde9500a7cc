"""Frozen encoders that turn frames and short clips into feature vectors.

* Frame encoder: ``timm/<name>``, built with random weights (``pretrained=False``: nothing is
  downloaded) unless the user gives a weights file; timm's ``num_classes=0`` gives pooled features.
* Clip encoder: any video model lightact can build: ``tv/<name>`` (torchvision, e.g. ``tv/r3d_18``)
  or a registered lightact video model (``clip3d_tiny``, the embedded default). Its features are
  what goes into its last linear layer (the classifier), or ``forward_features`` when it has one.

Inputs are preprocessed here: the shorter side resized to ``size`` (antialiased), a centre square
crop, scaled to [0, 1] and normalised with the encoder's mean and std.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightact.features.settings import DEFAULT_CLIP_ENCODER, DEFAULT_FRAME_ENCODER

__all__ = ["DEFAULT_CLIP_ENCODER", "DEFAULT_FRAME_ENCODER", "FeatureEncoder", "build_encoder", "resize_crop"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
ENCODER_INIT_SEED = 0
KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)


def resize_crop(rgb: Tensor, size: int) -> Tensor:
    """uint8 ``[H, W, 3]`` -> float ``[3, size, size]`` in [0, 1]: shorter side to ``size``, centre crop."""
    x = rgb.permute(2, 0, 1).float().div_(255)[None]
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[0, :, top : top + size, left : left + size].clamp_(0, 1)


class _LastLinearInput:
    """Captures the input of a model's last ``nn.Linear`` (the features its classifier sees)."""

    def __init__(self, model: nn.Module, name: str) -> None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"{name}: has no linear classifier to read features from and no forward_features"
            )
        self.value: Tensor | None = None
        linears[-1].register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple) -> None:
        self.value = args[0]


class FeatureEncoder(nn.Module):
    """``forward(x) -> [B, D]`` features of a frozen model, in eval mode; inputs already normalised
    by :meth:`normalise` (images ``[B, 3, S, S]`` or clips ``[B, 3, T, S, S]``)."""

    def __init__(self, model: nn.Module, name: str, kind: str, size: int, mean, std) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.name, self.kind, self.size = name, kind, size
        shape = (1, 3, 1, 1) if kind == "frame" else (1, 3, 1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean).view(shape))
        self.register_buffer("std", torch.tensor(std).view(shape))
        self._capture = None
        self._use_forward_features = kind == "clip" and hasattr(model, "forward_features")
        if kind == "clip" and not self._use_forward_features:
            self._capture = _LastLinearInput(model, name)

    def normalise(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        if self._use_forward_features:
            out = self.model.forward_features(x)
        elif self._capture is not None:
            self.model(x)
            out = self._capture.value
        else:
            out = self.model(x)
        if out.dim() > 2:  # an unpooled feature map: average over everything but channels
            out = out.flatten(2).mean(-1)
        return out.float()

    @torch.no_grad()
    def feature_dim(self, num_frames: int = 8) -> int:
        if getattr(self, "_dim", None) is not None:
            return self._dim
        device = self.mean.device
        probe = torch.zeros((1, 3, self.size, self.size), device=device)
        if self.kind == "clip":
            probe = torch.zeros((1, 3, num_frames, self.size, self.size), device=device)
        self._dim = int(self(probe).shape[1])
        return self._dim


def _accepts(name: str) -> set[str]:
    """The constructor arguments of a model the registry can build (empty when unknown)."""
    from lightact.models.registry import model_entry

    return set(model_entry(name).accepts or ())


def build_encoder(
    name: str, kind: str, size: int, weights: str | Path | None = None, clip_len: int = 8
) -> FeatureEncoder:
    """The frozen ``frame`` (``timm/<name>``) or ``clip`` (any video model) encoder, weights loaded."""
    # Encoders without weights keep their random initialisation, which must be the same in every
    # process and every later run (a predictor re-creates them): it is drawn from a fixed seed,
    # without touching the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ENCODER_INIT_SEED)
        model, mean, std = _build_model(name, kind, size, clip_len)
    if weights is not None:
        from lightact.models.weights import load_pretrained

        # strict: a frozen encoder must not keep random parts
        load_pretrained(model, weights, model_name=name)
    return FeatureEncoder(model, name, kind, size, mean, std)


def _build_model(name: str, kind: str, size: int, clip_len: int) -> tuple[nn.Module, tuple, tuple]:
    from lightact.models.registry import create_model, model_entry

    if kind == "frame":
        if not name.startswith("timm/"):
            raise ValueError(
                f"frame encoder {name!r}: give a timm image model as timm/<name>, e.g. timm/resnet18"
            )
        model = create_model(name, num_classes=0)
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    elif kind == "clip":
        entry = model_entry(name)
        if entry.modality != "video":
            raise ValueError(
                f"clip encoder {name!r} is not a video model ({entry.modality}); give tv/<name> or a "
                "lightact video model such as clip3d_tiny"
            )
        accepted = _accepts(name)
        kwargs = {k: v for k, v in {"num_frames": clip_len, "img_size": size}.items() if k in accepted}
        model = create_model(name, **kwargs)
        mean, std = (KINETICS_MEAN, KINETICS_STD) if name.startswith("tv/") else (IMAGENET_MEAN, IMAGENET_STD)
    else:
        raise ValueError(f"kind must be 'frame' or 'clip', got {kind!r}")
    return model, mean, std
