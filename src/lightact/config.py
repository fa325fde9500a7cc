"""Typed experiment configuration: YAML files, dotted ``--set`` overrides, strict validation.

The defaults of :class:`ExperimentConfig` are the embedded quickstart (STAR-64 on the synthetic
skeleton dataset), so ``lightact train`` with no file runs something meaningful. Unknown keys and
wrong types are errors that name the dotted key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from lightact.errors import UsageError
from lightact.features.settings import ExtractionSettings

CONFIG_FILE_NAME = "config.yaml"

# A config is a few hundred values; YAML aliases can make a short file stand for billions of them.
MAX_CONFIG_NODES = 100_000


class ConfigError(UsageError):
    """A configuration file or override is invalid; the message names the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SynthConfig(Strict):
    samples_per_class: int = Field(60, ge=2)
    seed: int = 0
    val_fraction: float = Field(0.25, gt=0, lt=1)


class DataConfigBase(Strict):
    """What every modality's data section has; ``kind`` picks the modality."""

    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(0, ge=0)


class SkeletonDataConfig(DataConfigBase):
    kind: Literal["skeleton"] = "skeleton"
    path: Path | None = None  # annotation pickle; None = the embedded synthetic dataset
    synth: SynthConfig = SynthConfig()
    layout: str = "ntu25"  # built-in layout name or a layout YAML file
    train_split: str = "train"
    val_split: str | None = "val"  # None: no validation
    test_split: str | None = None  # defaults to val_split
    # > 0: validate on this fraction of train_split, held out (stratified by class, seeded by the
    # experiment's seed) instead of on val_split; never on the test split.
    val_fraction: float = Field(0.0, ge=0, lt=1)
    val_group: str | None = None  # with val_fraction: hold out whole groups (e.g. subject) instead
    # Padded models see this many frames (clips cut or zero-padded); None: the batch's longest clip,
    # which is the resampling length when the transforms resample.
    max_frames: int | None = Field(None, ge=1)
    # The quickstart resamples every clip to 32 frames: the synthetic motions need no more, and it
    # keeps a CPU epoch short. Real-data configs set their own (or none: STAR takes any length).
    train_transforms: list[str | dict[str, Any]] = [{"name": "temporal_resample", "length": 32}]
    test_transforms: list[str | dict[str, Any]] = [
        {"name": "temporal_resample", "length": 32, "random_offset": False}
    ]


class VideoSynthConfig(Strict):
    """The embedded video set (``lightact data synth video``), generated in memory."""

    samples_per_class: int = Field(40, ge=2)
    seed: int = 0
    num_frames: int = Field(16, ge=2)  # frames per rendered clip
    size: int = Field(64, ge=32)
    val_fraction: float = Field(0.25, gt=0, lt=1)


class VideoDataConfig(DataConfigBase):
    """Short clips (issue 5): a video list, Kinetics CSV, SSv2 or Diving48 JSON, or the embedded set.

    ``format: synthetic`` ignores the paths. Otherwise ``train_file``/``val_file``/``test_file`` are
    the split annotation files, ``root`` the video folder, ``labels_file`` SSv2's labels.json,
    Diving48's vocabulary, or (lists) a class-name file, one name a line.
    """

    kind: Literal["video"] = "video"
    format: Literal["synthetic", "list", "kinetics", "ssv2", "diving48"] = "synthetic"
    root: Path | None = None
    train_file: Path | None = None
    val_file: Path | None = None
    test_file: Path | None = None  # defaults to val_file
    labels_file: Path | None = None
    synth: VideoSynthConfig = VideoSynthConfig()
    num_frames: int = Field(8, ge=1)  # frames per clip the model sees
    sampling: Literal["uniform", "dense"] = "uniform"  # uniform segments (SSv2) or dense (Kinetics)
    frame_interval: int = Field(1, ge=1)  # dense sampling only
    resize: int | None = Field(64, ge=8)  # short side after decoding (in the decoder); None = as is
    crop: int = Field(64, ge=8)  # square crop = the model's img_size
    crop_scale: tuple[float, float] = (0.25, 1.0)  # random-resized-crop area range (training)
    flip: bool = True
    flip_swap: Literal["auto", "none"] = "auto"  # auto: swap left/right classes by their names
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    mixup_alpha: float = Field(0.0, ge=0)
    cutmix_alpha: float = Field(0.0, ge=0)
    mixup_prob: float = Field(1.0, ge=0, le=1)
    mixup_switch_prob: float = Field(0.5, ge=0, le=1)
    decode_threads: int = Field(1, ge=1)  # FFmpeg threads per loader worker
    frame_template: str = "img_{:05d}.jpg"  # frame folders


class ImageSynthConfig(Strict):
    """The embedded still-image set (``lightact data synth image``)."""

    samples_per_class: int = Field(150, ge=2)
    seed: int = 0
    size: int = Field(64, ge=16)  # rendered side length, pixels
    test_fraction: float = Field(0.3, gt=0, lt=1)


class ImageDataConfig(DataConfigBase):
    """Still images (issue 6): Stanford 40, a class-per-folder tree, or the embedded set."""

    kind: Literal["image"] = "image"
    # Stanford 40 root (ImageSplits/, JPEGImages/) or an image-folder root; None = the embedded set.
    path: Path | None = None
    # None: "stanford40" when path holds ImageSplits/actions.txt, else "folder"; "synthetic" without path.
    format: Literal["synthetic", "stanford40", "folder"] | None = None
    synth: ImageSynthConfig = ImageSynthConfig()
    img_size: int = Field(64, ge=16)  # the model's input side; the data module passes it to the model
    train_split: str = "train"
    # Stanford 40 has only train/test (the literature reports test); the embedded set's "val" is "test".
    val_split: str = "test"
    test_split: str = "test"
    holdout_fraction: float = Field(0.2, gt=0, lt=1)  # folder trees without split folders
    crop_scale: tuple[float, float] = (0.35, 1.0)  # RandomResizedCrop area range
    hflip: float = Field(0.5, ge=0, le=1)
    color_jitter: float = Field(0.0, ge=0)
    crop_pct: float = Field(0.875, gt=0, le=1)  # eval: resize to img_size / crop_pct, centre crop
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    on_corrupt: Literal["error", "skip"] = "error"  # skip: decode all once, leave out bad files, warn

    @model_validator(mode="after")
    def _check_source(self) -> ImageDataConfig:
        if self.format in ("stanford40", "folder") and self.path is None:
            raise ValueError(f"format {self.format!r} needs data.path")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        return self

    @property
    def resolved_format(self) -> str:
        if self.format is not None:
            return self.format
        if self.path is None:
            return "synthetic"
        from lightact.data.image.sources import image_dataset_format

        return image_dataset_format(self.path)


class LongVideoSynthConfig(Strict):
    """The embedded long-video set: rendered, then extracted, once under ``root`` and reused."""

    root: Path = Path("data/synth_longvideo")
    videos_per_class: int = Field(80, ge=2)
    duration_s: float = Field(120.0, ge=48)  # SynthLongVideoSpec: two 8 s events 30 s apart, 1 s margins
    seed: int = 0
    val_fraction: float = Field(0.25, gt=0, lt=1)


# How the embedded set's features are extracted (``data.extraction``, the ``extract-features``
# settings): a random-weight ResNet-10-T on 64x64 frames at 1 fps, the tiny 3D CNN on 8-frame 32x32
# clips at 4 fps, a clip every 2 s. Keys a config leaves out take these values rather than the
# library's full-size defaults. For a user's store the settings are read from the store.
EMBEDDED_EXTRACTION: dict[str, Any] = {"frame_size": 64, "clip_size": 32, "clip_fps": 4.0}


class LongVideoDataConfig(DataConfigBase):
    """Cached features of long videos (issue 7): a feature store plus LVU-style CSVs
    (``video_path,label``), or, with ``store`` unset, the embedded synthetic set."""

    kind: Literal["longvideo"] = "longvideo"
    batch_size: int = Field(16, ge=1)
    store: Path | None = None  # folder of per-video .safetensors; None = the embedded synthetic set
    train_csv: Path | None = None
    val_csv: Path | None = None
    test_csv: Path | None = None  # defaults to val_csv
    task: Literal["classification", "regression"] = "classification"
    # Class names (or a text file, one a line); for regression the target's name(s).
    classes: list[str] | Path | None = None
    max_frames: int | None = Field(None, ge=1)  # training: at most this many frame tokens, evenly spread
    max_clips: int | None = Field(None, ge=1)
    time_shift: float = Field(0.0, ge=0)  # training: shift each video's times by up to this many seconds
    regression_loss: Literal["mse", "l1"] = "mse"
    synth: LongVideoSynthConfig = LongVideoSynthConfig()
    extraction: ExtractionSettings = ExtractionSettings(**EMBEDDED_EXTRACTION)

    @field_validator("extraction", mode="before")
    @classmethod
    def _embedded_extraction(cls, value: Any) -> Any:
        return {**EMBEDDED_EXTRACTION, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _check_sources(self) -> LongVideoDataConfig:
        if self.store is not None and (self.train_csv is None or self.val_csv is None):
            raise ValueError("a feature store needs train_csv and val_csv (LVU-style video_path,label)")
        return self


def _data_kind(value: Any) -> str:
    # Configs written before other modalities existed have no ``kind``: they are skeleton configs.
    if isinstance(value, dict):
        return value.get("kind", "skeleton")
    return getattr(value, "kind", "skeleton")


DATA_KINDS = ("skeleton", "video", "image", "longvideo")
DataConfig = Annotated[
    Annotated[SkeletonDataConfig, Tag("skeleton")]
    | Annotated[VideoDataConfig, Tag("video")]
    | Annotated[ImageDataConfig, Tag("image")]
    | Annotated[LongVideoDataConfig, Tag("longvideo")],
    Discriminator(_data_kind),
]


class ModelConfig(BaseModel):
    """``name`` picks a registered model; every other key is a constructor argument, checked
    against the constructor's signature and type hints (which the registry records).

    Validation imports the model families (and torch): an experiment's config is only built
    default-free when it is read, never when this module is imported."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    name: str = "star_64"
    weights: Path | None = None  # the user's pretrained weights (safetensors or a torch state dict)
    # false: load what fits even when learnt tensors would stay at their initial values (listed)
    weights_strict: bool = True
    weights_entry: str | None = None  # the checkpoint entry to read, e.g. state_dict_ema; None: the weights

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _check_arguments(self) -> ModelConfig:
        from lightact.models.registry import check_arguments

        try:
            check_arguments(self.name, self.kwargs)
        except KeyError as err:
            raise ValueError(str(err.args[0])) from None
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
    # torch intra-op threads. "auto": half the CPUs this process may use, at least 1 (one per
    # physical core where cores run two hardware threads; 1 on a 2-CPU machine: BENCHMARKS.md
    # measures 1 against 2 there); None: torch's default (every CPU); or a number.
    num_threads: Annotated[int, Field(ge=1)] | Literal["auto"] | None = "auto"
    # torch.compile the model in place, dynamic shapes: true (inductor; on CPU it needs a C++
    # compiler) or a backend's name ("aot_eager", "eager": no code generation, to find graph
    # problems). Minutes of compilation at the start, then faster steps (BENCHMARKS.md, issue 15);
    # STAR compiles once for every batch. Weights and checkpoints are the same as without.
    compile: bool | Literal["inductor", "aot_eager", "eager"] = False
    # Keep an exponential moving average of the weights, updated every step: validation,
    # checkpoints and the final weights are the average's. 0.99 averages over about the last 100
    # steps. None: the weights as trained.
    ema_decay: float | None = Field(None, gt=0, lt=1)
    # Lightning's loggers, each under the work dir: csv (csv/version_N/metrics.csv, every step),
    # tensorboard (tb/), mlflow (mlruns/, or $MLFLOW_TRACKING_URI) and wandb need their extras.
    loggers: list[Literal["csv", "tensorboard", "mlflow", "wandb"]] = ["csv", "tensorboard"]
    verbose: bool = False  # Lightning's own info lines, model summary and the warnings lightact hides


class EvalConfig(Strict):
    num_clips: int = Field(1, ge=1)  # test views per sample, scores averaged
    num_crops: int = Field(1, ge=1)  # spatial test crops per clip (video, image), scores averaged
    clip_len: int | None = None  # frames per test view (uniformly resampled); None = whole clip


class DistillConfig(Strict):
    """Knowledge distillation from a frozen teacher (issue 6).

    ``soft``: ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, label)``;
    ``hard``: ``alpha * CE(student, argmax teacher) + (1 - alpha) * CE(student, label)``;
    ``token``: DeiT, for students with a distillation token (``timm/deit_*_distilled_*``): the class
    head learns the labels, the distillation head the teacher (``token_target``), weighted the same.
    """

    mode: Literal["soft", "hard", "token"] = "soft"
    alpha: float = Field(0.5, ge=0, le=1)
    temperature: float = Field(4.0, gt=0)
    token_target: Literal["hard", "soft"] = "hard"  # what the distillation head learns in token mode
    teacher: str = "timm/convnext_tiny"
    teacher_kwargs: dict[str, Any] = {}  # constructor arguments beyond num_classes (and img_size)
    teacher_weights: Path | None = None  # a lightact work dir, its model.safetensors, or a state dict
    # online: the teacher sees every fresh augmentation; cached: its logits for cache_views fixed
    # augmented views per image are computed once, and each epoch picks one view per image.
    cache: Literal["online", "cached"] = "online"
    cache_views: int = Field(4, ge=1)
    cache_path: Path | None = None  # default: <work_dir>/teacher_logits.safetensors

    @model_validator(mode="after")
    def _check_teacher(self) -> DistillConfig:
        from lightact.models.registry import check_arguments

        try:
            check_arguments(self.teacher, self.teacher_kwargs)
        except KeyError as err:
            raise ValueError(str(err.args[0])) from None
        except ValueError as err:
            raise ValueError(f"teacher_kwargs: {err}") from None
        return self


class ExperimentConfig(Strict):
    name: str = "star_synth"
    description: str | None = None  # one line; `lightact configs` shows it
    seed: int = 0
    work_dir: Path | None = None  # default: work_dirs/<name>
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = SkeletonDataConfig()
    optim: OptimConfig = OptimConfig()
    trainer: TrainerConfig = TrainerConfig()
    eval: EvalConfig = EvalConfig()
    distill: DistillConfig | None = None
    # K-fold cross-validation: K runs over the data's fold{k}_train / fold{k}_test splits, one
    # summary (`lightact train --folds K` sets it).
    folds: int | None = Field(None, ge=2)

    @property
    def resolved_work_dir(self) -> Path:
        return self.work_dir or Path("work_dirs") / self.name


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.dim=128"`` -> ``(["model", "dim"], 128)``; the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    try:
        return key.strip().split("."), yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({_one_line(err)})") from None


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
        loc = list(e["loc"])
        if loc[:1] == ["data"] and len(loc) > 1 and loc[1] in DATA_KINDS:
            del loc[1]  # pydantic names the union member the data section was read as
        key = ".".join(str(p) for p in loc) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return "invalid configuration: " + "; ".join(lines)


def build_config(raw: dict[str, Any]) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def find_config(name_or_path: str | Path) -> Path:
    """The experiment file ``name_or_path`` names: an existing file wins, else the config of that
    name shipped with lightact (``pst_xs_synth``, ``configs/pst_xs_synth.yaml``: see
    :mod:`lightact.configs`)."""
    from lightact.configs import packaged_names, resolve

    path = resolve(name_or_path)
    if path is not None:
        return path
    close = difflib.get_close_matches(Path(name_or_path).stem, packaged_names(), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(
        f"config file {name_or_path} does not exist and no shipped config has that name"
        f" (`lightact configs` lists them){hint}"
    )


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment (a file, or the name of a shipped config; the quickstart defaults when
    ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = find_config(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({_one_line(err)})") from None
        except (UnicodeDecodeError, IsADirectoryError) as err:
            raise ConfigError(f"{path}: not a YAML text file ({err})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        _check_size(raw, path)
    return build_config(apply_overrides(raw, overrides or []))


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _check_size(raw: Any, path: Path) -> None:
    """Refuse a file whose aliases expand to more than :data:`MAX_CONFIG_NODES` values (a "billion
    laughs" file would otherwise exhaust memory when validated or written back)."""
    count, stack = 0, [raw]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise ConfigError(f"{path}: more than {MAX_CONFIG_NODES} values (nested YAML aliases?)")
        if isinstance(node, dict):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, list | tuple):
            stack += node


def dump_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the fully resolved config (every default spelled out) so a run can be repeated."""
    data = cfg.model_dump(mode="json")
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
