"""Check a skeleton annotation pickle (MMAction2 / pyskl schema) before training on it.

Every problem is reported, not just the first, each with the sample it concerns, so a user can fix a
converted dataset in one pass. Loading goes through the restricted unpickler: validating a file never
runs code from it.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lightact.data.skeleton.pickle_io import safe_load_pickle

REQUIRED_KEYS = ("frame_dir", "label", "keypoint", "total_frames")

# Problem kinds, in the order they are listed.
KINDS = {
    "unreadable": "the file could not be loaded (missing, not a pickle, or holds code)",
    "structure": "top-level layout or an annotation is not what the schema says",
    "missing_key": "an annotation lacks a required key",
    "bad_type": "a field has the wrong type",
    "keypoint_shape": "keypoint is not [M, T, V, C] with C 2 or 3",
    "joint_count": "samples differ in their number of joints V (one file holds one joint layout)",
    "total_frames": "total_frames differs from the keypoint's T",
    "score_shape": "keypoint_score is not [M, T, V] matching keypoint",
    "missing_score": "2D keypoints without keypoint_score",
    "unlabelled": "label -1 (unknown, as pose extraction writes it): fine for predict, not for training",
    "non_finite": "NaN or infinite coordinates or scores",
    "label_range": "label is negative or not below num_classes (or the file's own class list)",
    "duplicate": "the same frame_dir is annotated more than once",
    "split_unknown_id": "a split lists an id that has no annotation",
}
WARNING_KINDS = frozenset({"missing_score", "unlabelled"})


@dataclass(frozen=True)
class Problem:
    """One finding. ``sample`` is the annotation's ``frame_dir`` (or ``None`` for file-level problems)."""

    sample: str | None
    kind: str
    message: str

    @property
    def severity(self) -> Literal["error", "warning"]:
        return "warning" if self.kind in WARNING_KINDS else "error"


def has_errors(problems: list[Problem]) -> bool:
    """Whether any problem is error-level (warnings alone do not make a file unusable)."""
    return any(p.severity == "error" for p in problems)


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool | np.bool_)


def _is_real(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)


def _check_annotation(index: int, ann: Any, num_classes: int | None) -> tuple[str | None, list[Problem]]:
    """Problems of one annotation and its sample id (``None`` if it has no usable ``frame_dir``)."""
    if not isinstance(ann, Mapping):
        return None, [
            Problem(None, "structure", f"annotation #{index} is a {type(ann).__name__}, not a dict")
        ]
    sample = ann.get("frame_dir")
    if not isinstance(sample, str):
        sample = None
    where = sample if sample is not None else f"annotation #{index}"
    problems: list[Problem] = []

    def add(kind: str, message: str) -> None:
        problems.append(Problem(sample, kind, f"{where}: {message}"))

    for key in REQUIRED_KEYS:
        if key not in ann:
            add("missing_key", f"required key {key!r} is missing")
    if "frame_dir" in ann and sample is None:
        add("bad_type", f"frame_dir is a {type(ann['frame_dir']).__name__}, not a str")

    if "label" in ann:
        label = ann["label"]
        if not _is_int(label):
            add("bad_type", f"label {label!r} is a {type(label).__name__}, not an int")
        elif label == -1:
            add("unlabelled", "label -1 (unknown)")
        elif num_classes is not None and not 0 <= label < num_classes:
            add("label_range", f"label {label} is not in [0, {num_classes})")
        elif label < 0:
            add("label_range", f"label {label} is negative")

    keypoint = ann.get("keypoint")
    t = None
    kp_ok = False
    if "keypoint" in ann:
        if not isinstance(keypoint, np.ndarray):
            add("bad_type", f"keypoint is a {type(keypoint).__name__}, not a numpy array")
        elif not _is_real(keypoint):
            add("bad_type", f"keypoint has dtype {keypoint.dtype}, not a real number type")
        elif keypoint.ndim != 4 or keypoint.shape[-1] not in (2, 3):
            add(
                "keypoint_shape",
                f"keypoint shape {list(keypoint.shape)} is not [M, T, V, C] with C in {{2, 3}}",
            )
        else:
            kp_ok = True
            t = keypoint.shape[1]
            if min(keypoint.shape) == 0:
                add("keypoint_shape", f"keypoint shape {list(keypoint.shape)} is empty")
            if not np.isfinite(keypoint).all():
                add("non_finite", f"keypoint holds {int((~np.isfinite(keypoint)).sum())} NaN/inf value(s)")

    if "total_frames" in ann:
        total = ann["total_frames"]
        if not _is_int(total):
            add("bad_type", f"total_frames {total!r} is a {type(total).__name__}, not an int")
        elif t is not None and total != t:
            add("total_frames", f"total_frames is {total} but keypoint has T = {t}")

    score = ann.get("keypoint_score")
    if "keypoint_score" in ann:
        if not isinstance(score, np.ndarray) or not np.issubdtype(score.dtype, np.floating):
            add("bad_type", "keypoint_score is not a float numpy array")
        else:
            if kp_ok and score.shape != keypoint.shape[:3]:
                expected = list(keypoint.shape[:3])
                add("score_shape", f"keypoint_score shape {list(score.shape)} is not [M, T, V] = {expected}")
            elif not kp_ok and score.ndim != 3:
                add("score_shape", f"keypoint_score shape {list(score.shape)} is not [M, T, V]")
            if not np.isfinite(score).all():
                add("non_finite", f"keypoint_score holds {int((~np.isfinite(score)).sum())} NaN/inf value(s)")
    elif kp_ok and keypoint.shape[-1] == 2:
        add("missing_score", "2D keypoints without keypoint_score")
    return sample, problems


def validate_annotations(data_or_path: Any, num_classes: int | None = None) -> list[Problem]:
    """All problems of an annotation pickle (a path, loaded safely) or of its already loaded data."""
    if isinstance(data_or_path, str | Path):
        try:
            data = safe_load_pickle(data_or_path)
        except (OSError, ValueError, pickle.UnpicklingError) as err:  # incl. UnsafePickleError
            return [Problem(None, "unreadable", str(err))]
        except Exception as err:  # a corrupt pickle can fail in many ways
            return [Problem(None, "unreadable", f"{type(err).__name__}: {err}")]
    else:
        data = data_or_path

    if not isinstance(data, Mapping):
        return [Problem(None, "structure", f"the top level is a {type(data).__name__}, not a dict")]
    problems: list[Problem] = []
    annotations = data.get("annotations")
    if "annotations" not in data:
        problems.append(Problem(None, "structure", "the top-level key 'annotations' is missing"))
        annotations = []
    elif not isinstance(annotations, list | tuple):
        problems.append(
            Problem(None, "structure", f"'annotations' is a {type(annotations).__name__}, not a list")
        )
        annotations = []

    if isinstance(data.get("annotations"), list | tuple) and not data["annotations"]:
        problems.append(Problem(None, "structure", "'annotations' is empty: the file holds no sample"))
    classes = data.get("classes")
    if classes is not None:
        if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
            problems.append(Problem(None, "structure", "'classes' is not a list of class names"))
        elif num_classes is None:
            num_classes = len(classes)  # labels must name one of the file's own classes

    ids: Counter[str] = Counter()
    joints: dict[str, int] = {}
    for index, ann in enumerate(annotations):
        sample, found = _check_annotation(index, ann, num_classes)
        problems += found
        if sample is not None:
            ids[sample] += 1
            keypoint = ann.get("keypoint")
            if isinstance(keypoint, np.ndarray) and keypoint.ndim == 4:
                joints[sample] = keypoint.shape[2]
    problems += _joint_count_problems(joints)
    for sample, count in ids.items():
        if count > 1:
            problems.append(Problem(sample, "duplicate", f"{sample}: annotated {count} times"))

    if "split" in data:
        split = data["split"]
        if not isinstance(split, Mapping):
            problems.append(Problem(None, "structure", f"'split' is a {type(split).__name__}, not a dict"))
        else:
            for name, members in split.items():
                if not isinstance(members, list | tuple):
                    problems.append(
                        Problem(
                            None, "structure", f"split {name!r} is a {type(members).__name__}, not a list"
                        )
                    )
                    continue
                for member in members:
                    if not isinstance(member, str):
                        problems.append(
                            Problem(None, "structure", f"split {name!r} lists {member!r}, not a str")
                        )
                    elif member not in ids:
                        problems.append(
                            Problem(
                                member, "split_unknown_id", f"{member}: in split {name!r} but not annotated"
                            )
                        )
    return problems


def _joint_count_problems(joints: dict[str, int]) -> list[Problem]:
    """The samples whose joint count differs from the one most samples have."""
    if len(set(joints.values())) <= 1:
        return []
    usual, count = Counter(joints.values()).most_common(1)[0]
    return [
        Problem(
            sample,
            "joint_count",
            f"{sample}: keypoint has V = {v} joints, {count} other sample(s) have {usual}",
        )
        for sample, v in joints.items()
        if v != usual
    ]


def _truncate(items: list[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def format_problems(problems: list[Problem], max_ids: int = 8) -> str:
    """A readable report: a table with one row per problem kind, then each kind's first message and the
    offending sample ids (long lists truncated)."""
    if not problems:
        return "no problems found"
    by_kind: dict[str, list[Problem]] = {}
    for problem in problems:
        by_kind.setdefault(problem.kind, []).append(problem)
    order = {kind: i for i, kind in enumerate(KINDS)}
    # Errors first, then warnings; within each, in the order of KINDS.
    kinds = sorted(by_kind, key=lambda k: (k in WARNING_KINDS, order.get(k, len(order)), k))

    n_err = sum(p.severity == "error" for p in problems)
    n_warn = len(problems) - n_err
    width = max(len("kind"), *(len(k) for k in kinds))
    lines = [
        f"{n_err} error(s), {n_warn} warning(s)",
        "",
        f"{'kind':<{width}}  {'level':<7}  {'count':>5}  description",
        f"{'-' * width}  {'-' * 7}  {'-' * 5}  {'-' * 11}",
    ]
    for kind in kinds:
        group = by_kind[kind]
        lines.append(
            f"{kind:<{width}}  {group[0].severity:<7}  {len(group):>5}  {KINDS.get(kind, '')}".rstrip()
        )
    for kind in kinds:
        group = by_kind[kind]
        lines += ["", f"{kind} ({len(group)}):"]
        samples = list(dict.fromkeys(p.sample for p in group if p.sample is not None))
        no_sample = [p for p in group if p.sample is None]
        # File-level problems are listed; for per-sample ones, one message shows what is wrong.
        lines += [f"  {p.message}" for p in no_sample[:max_ids]]
        if len(no_sample) > max_ids:
            lines.append(f"  ... (+{len(no_sample) - max_ids} more)")
        if samples:
            example = next(p for p in group if p.sample is not None)
            lines.append(f"  e.g. {example.message}")
            lines.append(f"  samples: {_truncate(samples, max_ids)}")
    return "\n".join(lines)
