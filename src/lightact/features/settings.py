"""What decides a long video's features: the two frozen encoders and how frames and clips are sampled.

One model serves the library (:func:`lightact.features.extract.extract_features`), the experiment
config (``data.extraction``) and the ``extract-features`` command, and its :meth:`~ExtractionSettings.to_dict`
is what every feature store and every trained long-video model records, so that a new video is
encoded exactly as the training videos were. It imports nothing heavier than pydantic.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["DEFAULT_CLIP_ENCODER", "DEFAULT_FRAME_ENCODER", "ExtractionSettings"]

DEFAULT_FRAME_ENCODER = "timm/resnet10t"
DEFAULT_CLIP_ENCODER = "clip3d_tiny"


class ExtractionSettings(BaseModel):
    """Everything that decides the features (and is recorded in the store)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_encoder: str = DEFAULT_FRAME_ENCODER  # static stream: a timm image model, timm/<name>
    frame_weights: str | None = None
    frame_size: int = Field(224, ge=1)  # encoder input side (shorter side, centre crop)
    fps: float = Field(1.0, gt=0)  # frames per second sampled for the static stream
    clip_encoder: str = DEFAULT_CLIP_ENCODER  # temporal stream: tv/<name> or a lightact video model
    clip_weights: str | None = None
    clip_size: int = Field(112, ge=1)
    clip_len: int = Field(8, ge=1)  # frames per clip
    clip_fps: float = Field(8.0, gt=0)  # frames per second inside a clip
    clip_stride: float = Field(2.0, gt=0)  # seconds between clip starts

    @field_validator("frame_weights", "clip_weights", mode="before")
    @classmethod
    def _path_as_given(cls, value: Any) -> Any:
        # Kept as the text given: stores compare recorded settings as JSON.
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @classmethod
    def from_values(cls, **values: Any) -> ExtractionSettings:
        """Settings from values a user typed; a wrong one raises a one-line ``ValueError`` naming it."""
        try:
            return cls(**values)
        except ValidationError as err:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']} (got {e['input']!r})"
                if e["type"] != "extra_forbidden"
                else f"{'.'.join(map(str, e['loc']))}: not an extraction setting"
                for e in err.errors()
            ]
            raise ValueError("; ".join(problems)) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stores and checkpoints record (floats stay floats: ``4`` is ``4.0``)."""
        return self.model_dump()
