"""Typed experiment configuration: YAML files, dotted ``--set`` overrides, strict validation.

The defaults of :class:`ExperimentConfig` are the embedded quickstart (STAR-64 on the synthetic
skeleton dataset), so ``lightact train`` with no file runs something meaningful. Unknown keys and
wrong types are errors that name the dotted key.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

CONFIG_FILE_NAME = "config.yaml"


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SynthConfig(Strict):
    samples_per_class: int = Field(60, ge=2)
    seed: int = 0
    val_fraction: float = Field(0.25, gt=0, lt=1)


class DataConfig(Strict):
    kind: Literal["skeleton"] = "skeleton"
    path: Path | None = None  # annotation pickle; None = the embedded synthetic dataset
    synth: SynthConfig = SynthConfig()
    layout: str = "ntu25"  # built-in layout name or a layout YAML file
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = None  # defaults to val_split
    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(0, ge=0)
    max_frames: int = Field(300, ge=1)  # padded models see exactly this many frames
    # The quickstart resamples every clip to 32 frames: the synthetic motions need no more, and it
    # keeps a CPU epoch short. Real-data configs set their own (or none: STAR takes any length).
    train_transforms: list[str | dict[str, Any]] = [{"name": "temporal_resample", "length": 32}]
    test_transforms: list[str | dict[str, Any]] = [
        {"name": "temporal_resample", "length": 32, "random_offset": False}
    ]


class ModelConfig(BaseModel):
    """``name`` picks a registered model; every other key is a constructor argument, checked
    against the constructor's signature and type hints."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str = "star_64"

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _check_arguments(self) -> ModelConfig:
        from lightact.models.registry import model_entry

        try:
            entry = model_entry(self.name)
        except KeyError as err:
            raise ValueError(str(err.args[0])) from None
        model_class = typing.get_type_hints(entry.factory)["return"]
        hints = typing.get_type_hints(model_class.__init__)
        accepted = [p for p in inspect.signature(model_class.__init__).parameters if p != "self"]
        for key, value in self.kwargs.items():
            if key not in accepted:
                raise ValueError(f"unknown argument {key!r} for model {self.name} (accepted: {accepted})")
            if key in hints:
                try:
                    TypeAdapter(hints[key]).validate_python(value, strict=False)
                except ValidationError as err:
                    raise ValueError(f"{key}: {err.errors()[0]['msg']} (got {value!r})") from None
        return self


class OptimConfig(Strict):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(4e-5, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    nesterov: bool = True  # sgd only
    warmup_epochs: float = Field(0.5, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)


class TrainerConfig(Strict):
    max_epochs: int = Field(6, ge=1)
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"  # "ddp" for several processes (gloo on CPU, nccl on GPU)
    precision: str = "auto"  # "auto": 16-bit mixed on GPUs, 32-bit on CPU
    gradient_clip_val: float | None = 1.0
    accumulate_grad_batches: int = Field(1, ge=1)
    check_val_every_n_epoch: int = Field(1, ge=1)
    progress_bar: bool = True
    num_threads: int | None = None  # torch intra-op threads on CPU; None = torch's default


class EvalConfig(Strict):
    num_clips: int = Field(1, ge=1)  # test views per sample, scores averaged
    clip_len: int | None = None  # frames per test view (uniformly resampled); None = whole clip


class ExperimentConfig(Strict):
    name: str = "star_synth"
    seed: int = 0
    work_dir: Path | None = None  # default: work_dirs/<name>
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    trainer: TrainerConfig = TrainerConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def resolved_work_dir(self) -> Path:
        return self.work_dir or Path("work_dirs") / self.name


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.dim=128"`` -> ``(["model", "dim"], 128)``; the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    return key.strip().split("."), yaml.safe_load(value) if value.strip() else None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return raw


def _format_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"  {key}: {message}")
    return "invalid configuration:\n" + "\n".join(lines)


def build_config(raw: dict[str, Any]) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment (or the quickstart defaults when ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    return build_config(apply_overrides(raw, overrides or []))


def dump_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the fully resolved config (every default spelled out) so a run can be repeated."""
    data = cfg.model_dump(mode="json")
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
