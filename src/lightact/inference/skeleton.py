"""Classify skeleton sequences and videos with a trained lightact model.

:class:`SkeletonRecognizer` wraps a trained skeleton model (a work directory or its ``model.safetensors``)
and turns any of these into a :class:`Prediction`:

* a numpy array ``[M, T, V, C]`` of joint coordinates (or ``[T, V, C]`` for one person);
* an annotation dict in the MMAction2/pyskl pickle schema (``keypoint``, optional ``keypoint_score``
  and ``fps``), or a whole annotation file's dict (``{"annotations": [...]}``, giving a list);
* a path to a skeleton pickle (always a list, one prediction per annotation), a ``.npy`` array, or a
  video, whose poses :func:`lightact.data.skeleton.pose.extract_pose` extracts.

Input in another joint layout than the model's (a video gives MediaPipe's 33 landmarks) is converted
by :func:`lightact.data.skeleton.retarget.retarget` where a mapping exists, and refused with a clear
error where none does.

Videos
------
A video is posed as :attr:`SkeletonRecognizer.pose_options` say (:data:`DEFAULT_POSE_OPTIONS`: 10
poses per second, the second person searched every 5th posed frame while none is tracked, decoding
overlapped; :meth:`~SkeletonRecognizer.set_video_options` changes them) and the poses are resampled
to the frame rate of the model's training data (:attr:`~SkeletonRecognizer.fps`: the checkpoint's
``data.fps``, else 30). :meth:`~SkeletonRecognizer.predict_and_render` also writes the video with
the skeletons and answers drawn on it.

Several people
--------------
A model whose training samples had one person each (the checkpoint's ``data.persons`` is 1)
classifies each person of an input on their own: one :class:`Prediction` per person seen, its
``persons`` naming them (``person_mode="each"`` forces this, ``"together"`` the opposite). Other
models (two-person interactions, NTU's mix; older checkpoints that do not say) see everybody
together, and their prediction's ``persons`` lists who was seen.

Windows
-------
A clip of at most :data:`WHOLE_CLIP_MAX_FRAMES` (300, NTU's longest clips at 30 fps) frames is
classified whole. A longer one is cut into windows of :data:`DEFAULT_WINDOW` (150 frames, 5 s at
30 fps: longer than most single actions, short enough to follow a sequence of them) with a stride of
half a window; the last window is aligned with the end of the clip, so no frame is left out. A padded
model (ST-GCN) never gets more than the ``data.max_frames`` it was trained with. Every window goes
through exactly what an evaluated sample goes through: the training run's ``data.test_transforms``
and ``eval.clip_len`` resampling when it was set (both recorded in the checkpoint), score channel,
joint/bone/motion features or padding, batching, softmax. The overall probabilities are the mean
of the windows' (windows with no person in them are reported but left out of the mean).
"""

from __future__ import annotations

import math
import pickle
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lightact.data.skeleton.features import clip_features, pad_time, with_scores
from lightact.data.skeleton.layouts import Layout, get_layout, list_layouts
from lightact.data.skeleton.retarget import RetargetError, retarget, supported_mappings
from lightact.data.skeleton.transforms import Compose, TemporalResample, build_transforms
from lightact.data.video.reader import VIDEO_SUFFIXES
from lightact.inference.base import Predictor, load_backend
from lightact.inference.files import InputFiles, window_starts
from lightact.inference.results import (
    NoPersonError,
    Prediction,
    PredictionInputError,
    WindowPrediction,
    top_classes,
)
from lightact.inference.runtime import OnnxModel

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_WINDOW",
    "SKELETON_SUFFIXES",
    "WHOLE_CLIP_MAX_FRAMES",
    "SkeletonRecognizer",
]

DEFAULT_FPS = 30.0  # NTU RGB+D and the synthetic data are 30 fps
WHOLE_CLIP_MAX_FRAMES = 300
DEFAULT_WINDOW = 150
SKELETON_SUFFIXES = frozenset({".pkl", ".pickle", ".npy"})
PERSON_MODES = ("auto", "each", "together")
PER_PERSON_KEYS = ("keypoint", "keypoint_score", "keypoint_3d")  # [M, T, ...] arrays split by person
# From a video: MediaPipe at 10 poses per second (resampled to the model's rate), a second person
# looked for every 5th posed frame while none is tracked, decoding in a thread ahead of pose
# (docs/pose.md and BENCHMARKS.md measure what this costs and gives against every frame).
DEFAULT_POSE_OPTIONS: dict[str, Any] = {"pose_fps": 10.0, "second_search_every": 5, "overlap": True}
_BATCH_SIZE = 32
# Padded models (ST-GCN) average over person slots, and lightact's NTU converter and synthetic data
# always have two (the second all zeros for one-person actions): inputs with fewer get empty slots.
PADDED_PERSONS = 2


# ---------------------------------------------------------------------------------------------------
# the recogniser


@dataclass
class _Input:
    source: str
    annotation: dict[str, Any]
    label: str = ""  # how error messages name it; the source by default
    persons: list[int] | None = None  # which persons of the source it holds (None: all of them)

    def __post_init__(self) -> None:
        self.label = self.label or self.source


class SkeletonRecognizer(Predictor):
    """A trained skeleton model ready to classify inputs; see the module notes.

    Build it with :meth:`from_checkpoint`. ``classes`` are the class names, ``layout`` the joint
    layout the model reads, ``channels`` the coordinates (+ score) per joint it expects.
    """

    modality = "skeleton"
    inputs = InputFiles(
        SKELETON_SUFFIXES | VIDEO_SUFFIXES,
        "skeleton (.pkl, .pickle, .npy) or video file",
        # A pickle that would run code is refused (UnsafePickleError), like an unreadable one.
        errors=(ValueError, OSError, pickle.UnpicklingError),
    )

    def __init__(
        self,
        model: nn.Module | OnnxModel,
        meta: dict[str, Any],
        *,
        test_transforms: Sequence[str | dict[str, Any]] | None = None,
        clip_len: int | None = None,
        max_frames: int = 300,
        device: str | torch.device = "cpu",
        batch_size: int = _BATCH_SIZE,
        retarget_options: dict[str, Any] | None = None,
        fps: float | None = None,
        persons: int | None = None,
        person_mode: str = "auto",
        pose_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, meta, device)
        if person_mode not in PERSON_MODES:
            raise ValueError(f"person_mode must be one of {', '.join(PERSON_MODES)}, got {person_mode!r}")
        self.fps = float(fps or DEFAULT_FPS)
        self.trained_persons = persons
        self.person_mode = person_mode
        self.pose_options = {**DEFAULT_POSE_OPTIONS, **(pose_options or {})}
        layout = meta["kwargs"]["layout"]
        self.layout: Layout = Layout.from_dict(layout) if isinstance(layout, dict) else get_layout(layout)
        self.model_name: str = meta["model"]
        self.input_format: str = meta["input_format"]
        if self.input_format not in ("packed", "padded"):
            raise ValueError(f"unknown model input format {self.input_format!r}")
        in_channels = int(meta["kwargs"].get("in_channels", getattr(model, "in_channels", 3)))
        self.channels = in_channels // 3 if self.input_format == "packed" else in_channels
        self.max_frames = int(max_frames)
        self.batch_size = int(batch_size)
        self.retarget_options = dict(retarget_options or {})
        transforms = list(build_transforms(list(test_transforms or []), self.layout).transforms)
        if clip_len:  # as ``evaluate`` does for one test view
            transforms.append(TemporalResample(int(clip_len), random_offset=False))
        self.transform = Compose(transforms)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | OnnxModel,
        device: str | torch.device = "cpu",
        *,
        backend: str = "torch",
        transforms: Sequence[str | dict[str, Any]] | None = None,
        batch_size: int = _BATCH_SIZE,
        retarget_options: dict[str, Any] | None = None,
        person_mode: str = "auto",
        pose_options: dict[str, Any] | None = None,
    ) -> SkeletonRecognizer:
        """Load a work directory or its ``model.safetensors`` (``backend="onnxruntime"``: its
        exported ``model.onnx``, or an ``.onnx`` file). The training run's test transforms,
        ``eval.clip_len`` and ``data.max_frames`` come from the checkpoint (for one written before
        it recorded them, from the ``config.yaml`` beside the weights; an exported file carries
        them); ``transforms`` replaces the test transforms. With neither, no transform is applied
        (with a warning). ``person_mode`` and ``pose_options``: see the module notes."""
        model, meta = load_backend(path, backend)
        cls.check_modality(meta)
        if isinstance(model, OnnxModel):
            path, data = model.path, meta.get("data")
        else:
            from lightact.engine.checkpoint import inference_pipeline

            path = Path(path)
            data = inference_pipeline(path, meta)
        if data is None and transforms is None:
            warnings.warn(
                f"{path} records no test transforms and there is no config.yaml beside it: windows "
                "are classified without the training run's test transforms",
                stacklevel=2,
            )
        data = data or {}
        if transforms is None:
            transforms = data.get("test_transforms") or []
        try:
            return cls(
                model,
                meta,
                test_transforms=transforms,
                clip_len=data.get("clip_len"),
                max_frames=data.get("max_frames") or 300,
                device=device,
                batch_size=batch_size,
                retarget_options=retarget_options,
                fps=data.get("fps"),
                persons=data.get("persons"),
                person_mode=person_mode,
                pose_options=pose_options,
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: cannot rebuild the test pipeline: {err}") from None

    # ------------------------------------------------------------------------------------------- api

    def predict(
        self,
        x: Any,
        window: int | None = None,
        stride: int | None = None,
        topk: int = 5,
        fps: float | None = None,
    ) -> Prediction | list[Prediction]:
        """Classify ``x`` (see the module notes for what it may be) in windows of ``window`` frames,
        ``stride`` apart (defaults: the whole clip up to 300 frames, else 150-frame windows at half a
        window's stride). ``fps`` (default: the input's own, else 30) turns frames into seconds.
        Returns one :class:`Prediction`, or a list for pickle files and annotation-file dicts."""
        window, stride, topk = self.check_options(window, stride, topk)
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        inputs, many = self._read(x)
        return self._predict_items(inputs, many, window, stride, topk, fps)

    def predict_and_render(
        self,
        source: str | Path,
        out: str | Path,
        window: int | None = None,
        stride: int | None = None,
        topk: int = 5,
    ) -> Prediction | list[Prediction]:
        """:meth:`predict` a video, and write it to ``out`` with each person's skeleton, id and
        current action drawn on it (:func:`lightact.inference.render.render_skeleton_video`)."""
        from lightact.inference.render import render_skeleton_video

        window, stride, topk = self.check_options(window, stride, topk)
        path = Path(source)
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise PredictionInputError(f"{path}: rendering draws on a video; this is not one")
        annotation = self.video_annotation(path)
        result = self._predict_items([_Input(str(path), annotation)], False, window, stride, topk, None)
        render_skeleton_video(path, result if isinstance(result, list) else [result], annotation, out)
        return result

    def _predict_items(
        self, inputs: list[_Input], many: bool, window: int | None, stride: int | None, topk: int, fps
    ) -> Prediction | list[Prediction]:
        if self.separate_persons:
            split = [part for item in inputs for part in _each_person(item, single=not many)]
            many = many or len(split) > 1
            inputs = split or inputs
        if not many:
            return self._predict_one(inputs[0], window, stride, topk, fps)
        predictions, empty = [], []
        for item in inputs:
            try:
                predictions.append(self._predict_one(item, window, stride, topk, fps))
            except NoPersonError:
                empty.append(str(item.annotation.get("frame_dir") or item.label))
        if empty:
            if not predictions:
                raise NoPersonError(f"no person was found in {inputs[0].source}")
            warnings.warn(
                f"skipping {len(empty)} sample(s) in which no person is seen: "
                + ", ".join(map(str, empty[:5])),
                stacklevel=2,
            )
        return predictions

    def probabilities(self, clips: Iterable[dict[str, Any]]) -> np.ndarray:
        """Class probabilities ``[N, classes]`` of whole clips, each a dict with ``keypoint``
        (``[M, T, V, C]`` in the model's layout) and optional ``keypoint_score``, processed as a test
        sample is (test transforms, features, batching, softmax)."""
        features = []
        for i, clip in enumerate(clips):
            keypoint = np.asarray(clip["keypoint"], dtype=np.float32)
            if not np.abs(keypoint).sum() > 0:
                raise NoPersonError("a clip given to SkeletonRecognizer.probabilities has no person in it")
            score = clip.get("keypoint_score")
            sample = {
                "keypoint": keypoint,
                "keypoint_score": None if score is None else np.asarray(score, dtype=np.float32),
                "label": -1,
            }
            # The seed a test sample ``i`` of epoch 0 gets in SkeletonDataset: the same crop/offset.
            sample = self.transform(sample, np.random.default_rng([0, 0, i, 0]))
            keypoint = with_scores(sample["keypoint"], sample.get("keypoint_score"))
            features.append(clip_features(keypoint, self.layout.parents, self.input_format))
        if not features:
            return np.zeros((0, len(self.classes)))
        out = [
            _softmax(self._logits(features[first : first + self.batch_size]))
            for first in range(0, len(features), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float64)

    def _logits(self, features: list[np.ndarray]) -> np.ndarray:
        """The model's logits for a batch of clips' features: packed along time for a PyTorch STAR,
        padded with lengths for its exported form, padded to ``max_frames`` for a padded model."""
        if self.input_format == "padded":
            inputs: tuple[np.ndarray, ...] = (pad_time(features, axis=1, length=self.max_frames)[0],)
        elif self.backend == "onnxruntime":
            inputs = pad_time(features, axis=0)
        else:
            lengths = np.array([len(f) for f in features])
            inputs = (np.concatenate(features), np.repeat(np.arange(len(features)), lengths))
        if self.backend == "onnxruntime":
            return self.model(*inputs)
        import torch

        with torch.inference_mode():
            logits = self.model(*(torch.from_numpy(a).to(self.device) for a in inputs))
        return logits.float().cpu().numpy()

    def set_video_options(
        self, pose_fps: float | None = None, person_mode: str | None = None, **pose_options: Any
    ) -> None:
        """Change how videos are read: ``pose_fps`` (``None`` keeps the current rate, 0 poses every
        frame), ``person_mode`` and other :class:`~lightact.data.skeleton.pose.PoseExtractor`
        options (``second_search_every``, ``search_padding``, ...)."""
        if person_mode is not None:
            if person_mode not in PERSON_MODES:
                raise ValueError(f"persons must be one of {', '.join(PERSON_MODES)}, got {person_mode!r}")
            self.person_mode = person_mode
        if pose_fps is not None:
            if not (math.isfinite(pose_fps) and pose_fps >= 0):
                raise ValueError(f"pose fps must be a positive number (0: every frame), got {pose_fps!r}")
            self.pose_options["pose_fps"] = pose_fps or None
        self.pose_options.update(pose_options)

    @property
    def separate_persons(self) -> bool:
        """Whether each person of an input is classified on their own: ``person_mode="each"``, or
        ``"auto"`` for a model trained on one person at a time (a checkpoint that records how many
        persons its training samples had; older ones are classified with everybody together)."""
        if self.person_mode == "auto":
            return self.trained_persons == 1
        return self.person_mode == "each"

    def default_window(self, num_frames: int) -> int:
        """The window used when none is given: the whole clip up to 300 frames (and the padded
        model's ``max_frames``), else 150 frames."""
        limit = WHOLE_CLIP_MAX_FRAMES
        if self.input_format == "padded":
            limit = min(limit, self.max_frames)
        return num_frames if num_frames <= limit else min(DEFAULT_WINDOW, limit)

    # -------------------------------------------------------------------------------------- internals

    def _predict_one(
        self, item: _Input, window: int | None, stride: int | None, topk: int, fps: float | None
    ) -> Prediction:
        keypoint, score, input_layout = self._prepare(item)
        total = keypoint.shape[1]
        if fps is None:
            fps = _input_fps(item)
        window = min(window or self.default_window(total), total)
        stride = stride or max(1, window // 2)
        resampled = any(isinstance(t, TemporalResample) for t in self.transform.transforms)
        if self.input_format == "padded" and window > self.max_frames and not resampled:
            warnings.warn(
                f"windows of {window} frames are longer than the {self.max_frames} frames this model "
                f"takes (data.max_frames): it sees only the first {self.max_frames} of each",
                stacklevel=3,
            )
        clips, spans, seen = [], [], []
        for start in window_starts(total, window, stride):
            end = min(start + window, total)
            clip_kp = keypoint[:, start:end]
            spans.append((start, end))
            has_person = bool(np.any(clip_kp != 0))
            seen.append(has_person)
            if has_person:
                clip = {"frame_dir": f"{item.source}[{start}:{end}]", "keypoint": clip_kp}
                if score is not None:
                    clip["keypoint_score"] = score[:, start:end]
                clips.append(clip)
        probs = iter(self.probabilities(clips))
        windows = []
        for (start, end), has_person in zip(spans, seen, strict=True):
            p = next(probs) if has_person else None
            windows.append(
                WindowPrediction(
                    start_frame=start,
                    end_frame=end,
                    start_time=start / fps,
                    end_time=end / fps,
                    probabilities=p,
                    topk=[] if p is None else top_classes(p, self.classes, topk),
                )
            )
        overall = np.mean([w.probabilities for w in windows if w.has_person], axis=0)
        frame_dir = item.annotation.get("frame_dir")
        return Prediction(
            source=item.source,
            classes=list(self.classes),
            probabilities=overall,
            topk=top_classes(overall, self.classes, topk),
            windows=windows,
            fps=float(fps),
            num_frames=int(total),
            window=int(window),
            stride=int(stride),
            layout=self.layout.name,
            input_layout=input_layout,
            sample=None if frame_dir is None else str(frame_dir),
            persons=item.persons if item.persons is not None else _seen_persons(keypoint),
        )

    def _prepare(self, item: _Input) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        """Keypoints (and scores) of ``item`` in the model's layout and channel format."""
        ann, source = item.annotation, item.label
        if "keypoint" not in ann:
            raise PredictionInputError(f"{source}: the annotation has no 'keypoint' array")
        keypoint = _as_keypoint(ann["keypoint"], source)
        if keypoint.shape[0] == 0 or keypoint.shape[1] == 0 or not np.any(keypoint != 0):
            brief = int(ann.get("short_runs_removed") or 0)
            if brief:  # the pose extractor saw somebody, too briefly to keep
                raise NoPersonError(
                    f"no person was kept in {source}: people were seen in only {brief} frame(s), each time "
                    "for fewer consecutive frames than the pose extractor keeps (min_run)"
                )
            raise NoPersonError(f"no person was found in {source}")
        if not np.isfinite(keypoint).all():
            raise PredictionInputError(f"{source}: the keypoints hold NaN or infinite values")
        input_layout = None
        source_layout = ann.get("layout")
        joints = keypoint.shape[2]
        convert = joints != self.layout.num_joints or (
            source_layout not in (None, self.layout.name)
            and (source_layout, self.layout.name) in supported_mappings()
        )
        if convert:
            source_layout = source_layout or _layout_by_joint_count(joints)
            if source_layout is None:
                raise PredictionInputError(
                    f"{source}: the input has {joints} joints per frame, but the model was trained on layout "
                    f"{self.layout.name!r} with {self.layout.num_joints} joints "
                    f"({', '.join(self.layout.joints[:4])}, ...)"
                )
            try:
                ann = retarget({**ann, "layout": source_layout}, self.layout.name, **self.retarget_options)
            except RetargetError as err:
                raise PredictionInputError(
                    f"{source}: the input has {joints} joints per frame (layout {source_layout!r}) but the "
                    f"model reads layout {self.layout.name!r} ({self.layout.num_joints} joints): {err}"
                ) from None
            input_layout = source_layout
            keypoint = _as_keypoint(ann["keypoint"], source)
            if not np.any(keypoint != 0):
                raise NoPersonError(f"no person was found in {source}")
        score = ann.get("keypoint_score")
        if score is not None:
            score = np.asarray(score, dtype=np.float32)
            if score.ndim == 2 and keypoint.shape[0] == 1:
                score = score[None]
            if score.shape != keypoint.shape[:3]:
                raise PredictionInputError(
                    f"{source}: 'keypoint_score' has shape {score.shape}, expected {keypoint.shape[:3]} "
                    "(persons, frames, joints)"
                )
        coords = keypoint.shape[-1]
        if score is not None and coords == self.channels:
            score = None  # the model was trained on coordinates alone
        given = coords + (score is not None)
        if given != self.channels:
            what = f"{coords} coordinates" + (" + a score" if score is not None else "")
            raise PredictionInputError(
                f"{source}: the model expects {self.channels} values per joint (3D coordinates, or 2D "
                f"coordinates + a score, as it was trained), the input has {what}"
            )
        if self.input_format == "padded" and keypoint.shape[0] < PADDED_PERSONS:
            missing = PADDED_PERSONS - keypoint.shape[0]
            keypoint = np.concatenate([keypoint, np.zeros((missing, *keypoint.shape[1:]), np.float32)])
            if score is not None:
                score = np.concatenate([score, np.zeros((missing, *score.shape[1:]), np.float32)])
        return keypoint, score, input_layout

    def video_annotation(self, path: str | Path) -> dict[str, Any]:
        """The poses of a video (:attr:`pose_options`: pose rate, second-person search cadence,
        overlapped decoding) resampled to the rate the model was trained at (:attr:`fps`)."""
        from lightact.data.skeleton.resample import resample_poses

        return resample_poses(_extract_pose(Path(path), self.pose_options), self.fps)

    def _read(self, x: Any) -> tuple[list[_Input], bool]:
        if isinstance(x, np.ndarray):
            return [_Input("array", {"keypoint": x})], False
        torch = sys.modules.get("torch")  # a tensor can only be given where torch is loaded
        if torch is not None and torch.is_tensor(x):
            return [_Input("array", {"keypoint": x.detach().cpu().numpy()})], False
        if isinstance(x, dict):
            if "annotations" in x:
                return _annotation_list(x["annotations"], "annotation"), True
            return [_Input(str(x.get("frame_dir") or "annotation"), x)], False
        if isinstance(x, (list, tuple)) and x and all(isinstance(a, dict) for a in x):
            return _annotation_list(x, "annotation"), True
        if isinstance(x, (str, Path)):
            return self._read_path(Path(x))
        raise PredictionInputError(
            f"cannot classify a {type(x).__name__}: give a keypoint array [M, T, V, C], an annotation dict, "
            "or the path of a .pkl, .npy or video file"
        )

    def _read_path(self, path: Path) -> tuple[list[_Input], bool]:
        if not path.exists():
            raise FileNotFoundError(f"no input at {path}")
        if path.is_dir():
            raise PredictionInputError(f"{path} is a folder: use predict_path to classify every file in it")
        suffix = path.suffix.lower()
        if suffix in (".pkl", ".pickle"):
            from lightact.data.skeleton.pickle_io import safe_load_pickle

            data = safe_load_pickle(path)
            if isinstance(data, dict) and "annotations" in data:
                return _annotation_list(data["annotations"], str(path)), True
            if isinstance(data, dict) and "keypoint" in data:
                return [_Input(str(path), data)], True
            if isinstance(data, list) and data and all(isinstance(a, dict) for a in data):
                return _annotation_list(data, str(path)), True
            raise PredictionInputError(
                f"{path} is neither an annotation, a list of them, nor a dict with an 'annotations' list"
            )
        if suffix == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except ValueError as err:
                raise PredictionInputError(f"{path}: not a plain numeric .npy array ({err})") from None
            return [_Input(str(path), {"keypoint": array})], False
        if suffix in VIDEO_SUFFIXES:
            return [_Input(str(path), self.video_annotation(path))], False
        raise PredictionInputError(
            f"{path}: unsupported file type {suffix or '(none)'}; give a skeleton pickle (.pkl), a .npy "
            f"array or a video ({', '.join(sorted(VIDEO_SUFFIXES))})"
        )


def _extract_pose(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    try:
        from lightact.data.skeleton.pose import extract_pose
    except ImportError as err:
        raise PredictionInputError(
            f"{path}: classifying a video needs the pose extractor (lightact.data.skeleton.pose and "
            f"MediaPipe), which cannot be imported: {err}"
        ) from None
    try:
        annotation = extract_pose(str(path), **options)
    except ImportError as err:  # MediaPipe itself is missing (pose.MissingDependencyError)
        raise PredictionInputError(f"{path}: classifying a video needs MediaPipe: {err}") from None
    if not isinstance(annotation, dict) or "keypoint" not in annotation:
        raise PredictionInputError(f"{path}: the pose extractor returned no annotation")
    annotation = dict(annotation)
    annotation.setdefault("layout", "mediapipe33")
    if annotation.get("frame_dir") in (None, ""):
        annotation["frame_dir"] = path.stem
    return annotation


def _seen_persons(keypoint: np.ndarray) -> list[int]:
    """Indices of the persons with at least one seen frame in ``[M, T, V, C]`` keypoints."""
    return [int(m) for m in np.flatnonzero(np.abs(keypoint).reshape(len(keypoint), -1).sum(1) > 0)]


def _each_person(item: _Input, single: bool) -> list[_Input]:
    """One input per person seen in ``item`` (persons never seen are left out), each naming its
    person in its sample name: ``person<k>`` for a single input (a video, an array), else
    ``<sample>_person<k>``."""
    keypoint = np.asarray(item.annotation.get("keypoint"))
    if keypoint.ndim != 4 or keypoint.shape[0] < 2:
        return [item]
    parts = []
    frame_dir = item.annotation.get("frame_dir")
    for k in _seen_persons(keypoint):
        annotation = {
            key: (value[k : k + 1] if key in PER_PERSON_KEYS and np.ndim(value) >= 2 else value)
            for key, value in item.annotation.items()
        }
        name = f"person{k}" if single or not frame_dir else f"{frame_dir}_person{k}"
        annotation["frame_dir"] = name
        parts.append(_Input(item.source, annotation, f"{item.label} (person {k})", persons=[k]))
    return parts or [item]


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float32)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _annotation_list(annotations: Any, source: str) -> list[_Input]:
    if not isinstance(annotations, list) or not annotations:
        raise PredictionInputError(f"{source} holds no annotation")
    out = []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "keypoint" not in ann:
            raise PredictionInputError(f"{source}: annotation {i} has no 'keypoint' array")
        out.append(_Input(source, ann, f"{source} (sample {ann.get('frame_dir', i)})"))
    return out


def _as_keypoint(keypoint: Any, source: str) -> np.ndarray:
    try:
        keypoint = np.asarray(keypoint, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise PredictionInputError(f"{source}: keypoints are not a numeric array ({err})") from None
    if keypoint.ndim == 3:  # one person: [T, V, C]
        keypoint = keypoint[None]
    if keypoint.ndim != 4 or keypoint.shape[-1] not in (2, 3):
        raise PredictionInputError(
            f"{source}: keypoints must be [M persons, T frames, V joints, C = 2 or 3 coordinates] "
            f"(or [T, V, C] for one person), got shape {keypoint.shape}"
        )
    return keypoint


def _layout_by_joint_count(joints: int) -> str | None:
    """The one built-in layout with this many joints, if exactly one has it."""
    matches = [name for name in list_layouts() if get_layout(name).num_joints == joints]
    return matches[0] if len(matches) == 1 else None


def _input_fps(item: _Input) -> float:
    fps = item.annotation.get("fps")
    try:
        fps = float(fps) if fps is not None else DEFAULT_FPS
    except (TypeError, ValueError):
        fps = DEFAULT_FPS
    return fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
