"""Import a folder of per-sequence skeleton files (text, CSV or ``.npy``) described by a YAML spec.

A spec says where the files are, how to read one (delimiter, rows and columns to skip, joints per
frame, persons per row, coordinates per joint), which named fields of a file's path give its label,
subject and repetition, the class names, and how to split (a list of training subjects, K folds over
a field's values, or explicit fold lists). ``configs/datasets/`` ships specs for MSR Action3D and
SBU Kinect Interaction; the keys are documented in :class:`ImportSpec`.

Reading a file. Its data rows (after ``skip_rows`` lines; blank lines and ``#`` comments ignored) are
split into cells, the ``skip_columns`` are removed, and the remaining numbers, taken row after row,
fill frames of ``persons x joints x coords`` values in that order. MSR Action3D has one joint per row
(20 rows a frame, a confidence column skipped); SBU one frame per row (the frame number skipped, then
two persons of 15 joints). A problem names the file, the line and what was expected; a spec problem
names the spec file, the line and the key.

A sequence whose coordinates are all zero (no person ever seen: MSR's ``a13_s09_e02``) or that has
no data row is dropped and reported; it carries nothing to learn from. The pickle is written
atomically (:func:`lightact.data.skeleton.pickle_io.save_pickle`).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lightact.configs import resolve as resolve_config
from lightact.data.skeleton.pickle_io import save_pickle
from lightact.errors import DataError, UsageError

# The fields a file's path may give that the importer itself uses; any other named field is kept in
# the annotation as it is.
LABEL_FIELD = "label"


class ImportSpecError(UsageError):
    """The import spec is invalid; the message names the spec file, the line and the key."""


class ImportFileError(DataError):
    """A data file does not match the spec; the message names the file, the line and what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldsSpec(_Strict):
    """How a file's path (relative to ``root``, with ``/``) gives its fields: ``regex``, a regular
    expression with named groups that must match the whole path, or ``pattern``, the path with
    ``{name}`` where a field stands (a field matches one or more characters other than ``/``)."""

    regex: str | None = None
    pattern: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FieldsSpec:
        if (self.regex is None) == (self.pattern is None):
            raise ValueError("give exactly one of 'regex' and 'pattern'")
        return self

    def compiled(self) -> re.Pattern[str]:
        if self.regex is not None:
            return re.compile(self.regex)
        parts = re.split(r"\{(\w+)\}", self.pattern)
        # Even entries are literal text, odd ones field names.
        return re.compile(
            "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+?)" for i, p in enumerate(parts))
        )


class SplitSpec(_Strict):
    """Which field makes the splits, and how.

    * ``train: [values]``: splits ``train`` (those values) and ``test`` (every other value);
    * ``folds: K``: the field's distinct values, sorted, dealt round-robin into K folds;
    * ``folds: [[values], ...]``: the folds listed explicitly (every value in exactly one).

    Folds give splits ``fold{k}_train`` and ``fold{k}_test`` (fold k is the test set), which
    ``lightact train --folds K`` runs over. Values are compared as text, numbers without leading
    zeros (``01`` and ``1`` are the same subject).
    """

    by: str
    train: list[str | int] | None = None
    folds: int | list[list[str | int]] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SplitSpec:
        if (self.train is None) == (self.folds is None):
            raise ValueError("give exactly one of 'train' (a list of values) and 'folds'")
        if isinstance(self.folds, int) and self.folds < 2:
            raise ValueError("folds must be at least 2")
        if isinstance(self.folds, list) and len(self.folds) < 2:
            raise ValueError("list at least 2 folds")
        return self


class ImportSpec(_Strict):
    """An import spec. Relative paths are relative to the working directory, as in experiment configs.

    ``root``: the dataset folder (``lightact data import --root`` overrides it); ``files``: a glob
    under it (``**`` recurses); ``format``: ``text`` or ``npy`` (``auto``: by the file suffix);
    ``delimiter``: the cell separator of text files (``null``: any whitespace); ``skip_rows``: header
    lines; ``skip_columns``: 0-based columns dropped from every row; ``joints``, ``persons``,
    ``coords``: values of one frame, in that nesting (persons outermost); ``fields``: see
    :class:`FieldsSpec` (``label`` is required); ``id``: the sample id, a format string over the
    fields (default: the path without its suffix); ``classes``: the class names; ``first_label``: the
    number the first class has in file names (a label field that is a class name is looked up
    instead); ``layout``: a joint layout (name or YAML) whose joint count is checked; ``include``: a
    text file of sample ids, one a line, to import only those (a dataset's official subset, e.g. MSR
    Action3D's ``files_used_in_cvpr12_paper.txt``); ``split``: see :class:`SplitSpec`.
    """

    name: str | None = None
    root: Path
    files: str
    format: str = Field("auto", pattern="^(auto|text|npy)$")
    delimiter: str | None = None
    skip_rows: int = Field(0, ge=0)
    skip_columns: list[int] = []
    joints: int = Field(ge=1)
    persons: int = Field(1, ge=1)
    coords: int = Field(3, ge=2, le=3)
    fields: FieldsSpec
    id: str | None = None
    classes: list[str] = Field(min_length=1)
    first_label: int = 1
    layout: str | None = None
    include: Path | None = None
    split: SplitSpec

    @property
    def values_per_frame(self) -> int:
        return self.persons * self.joints * self.coords


# --------------------------------------------------------------------------------------------------
# the spec


def _yaml_lines(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """1-based line of every key path in a composed YAML document (``("split", "folds", 2)``)."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, key.value)] = key.start_mark.line + 1
            _yaml_lines(value, (*path, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_lines(item, (*path, i), out)
    return out


class _SpecFile:
    """A spec's text, parsed, with the line of every key for error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise ImportSpecError(f"import spec {path} does not exist")
        text = path.read_text()
        try:
            node = yaml.compose(text)
            self.raw = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise ImportSpecError(f"{path}: {where}not valid YAML ({getattr(err, 'problem', err)})") from None
        if not isinstance(self.raw, dict):
            raise ImportSpecError(f"{path}: line 1: an import spec must be a mapping of keys")
        self.lines = _yaml_lines(node)

    def error(self, key: Sequence[str | int], message: str) -> ImportSpecError:
        loc = tuple(key)
        while loc and loc not in self.lines:  # a missing key: point at its parent
            loc = loc[:-1]
        dotted = ".".join(str(k) for k in key) or "(top level)"
        return ImportSpecError(f"{self.path}: line {self.lines.get(loc, 1)}, key '{dotted}': {message}")


def load_import_spec(path: str | Path, root: str | Path | None = None) -> tuple[ImportSpec, _SpecFile]:
    """Read and check a spec; ``root`` replaces its ``root``. Errors name the file, line and key."""
    # A spec that ships with lightact is found by name too (configs/datasets/msr_action3d.yaml or
    # msr_action3d), from any directory; a file that exists wins.
    spec_file = _SpecFile(resolve_config(path) or Path(path))
    raw = dict(spec_file.raw)
    if root is not None:
        raw["root"] = str(root)
    try:
        spec = ImportSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif first["type"] == "missing":
            message = "required key is missing"
        raise spec_file.error(first["loc"], message) from None
    _check_spec(spec, spec_file)
    return spec, spec_file


def _check_spec(spec: ImportSpec, spec_file: _SpecFile) -> None:
    fields_key = ("fields", "regex" if spec.fields.regex is not None else "pattern")
    try:
        groups = set(spec.fields.compiled().groupindex)
    except re.error as err:
        raise spec_file.error(fields_key, f"not a valid regular expression ({err})") from None
    if LABEL_FIELD not in groups:
        raise spec_file.error(fields_key, f"no field named {LABEL_FIELD!r} (fields: {sorted(groups)})")
    if spec.split.by not in groups:
        raise spec_file.error(("split", "by"), f"{spec.split.by!r} is not one of the fields {sorted(groups)}")
    if spec.id is not None:
        used = set(re.findall(r"\{(\w+)[^}]*\}", spec.id))
        if used - groups:
            raise spec_file.error(
                ("id",), f"uses {sorted(used - groups)}, not among the fields {sorted(groups)}"
            )
    for i, column in enumerate(spec.skip_columns):
        if column < 0:
            raise spec_file.error(("skip_columns", i), f"column {column} is negative (columns count from 0)")
    if len(set(spec.classes)) != len(spec.classes):
        twice = [c for c, n in Counter(spec.classes).items() if n > 1]
        raise spec_file.error(("classes",), f"class names listed more than once: {twice}")
    if spec.layout is not None:
        from lightact.data.skeleton.layouts import get_layout

        try:
            layout = get_layout(spec.layout)
        except (KeyError, ValueError, FileNotFoundError) as err:
            raise spec_file.error(("layout",), str(err.args[0] if err.args else err)) from None
        if layout.num_joints != spec.joints:
            raise spec_file.error(
                ("joints",), f"{spec.joints} joints, but layout {layout.name!r} has {layout.num_joints}"
            )


# --------------------------------------------------------------------------------------------------
# one file


def _table_from_text(path: Path, spec: ImportSpec) -> tuple[np.ndarray, list[int]]:
    """The file's data rows as a float table, and each row's 1-based line number."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ImportFileError(f"{path}: cannot be read as text ({err})") from None
    rows: list[list[float]] = []
    numbers: list[int] = []
    width = first = 0
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if number <= spec.skip_rows or not line or line.startswith("#"):
            continue
        cells = line.split() if spec.delimiter is None else [c.strip() for c in line.split(spec.delimiter)]
        if not rows:
            width, first = len(cells), number
        elif len(cells) != width:
            raise ImportFileError(
                f"{path}: line {number}: {len(cells)} columns, expected {width} like line {first}"
            )
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            column, cell = next((j, c) for j, c in enumerate(cells) if not _is_number(c))
            raise ImportFileError(
                f"{path}: line {number}, column {column + 1}: {cell!r} is not a number"
            ) from None
        numbers.append(number)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width), numbers


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _table_from_npy(path: Path, spec: ImportSpec) -> tuple[np.ndarray, list[int]]:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ImportFileError(f"{path}: not a readable .npy array ({err})") from None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ImportFileError(f"{path}: array of {array.dtype}, expected numbers")
    array = array.reshape(len(array), -1) if array.ndim >= 2 else array.reshape(-1, 1)
    array = array[spec.skip_rows :]
    return array.astype(np.float64), list(range(spec.skip_rows + 1, spec.skip_rows + 1 + len(array)))


def read_sequence(path: str | Path, spec: ImportSpec) -> np.ndarray:
    """One file as keypoints ``[persons, frames, joints, coords]`` (float32); no data row gives 0 frames."""
    path = Path(path)
    kind = spec.format if spec.format != "auto" else ("npy" if path.suffix == ".npy" else "text")
    table, lines = (_table_from_npy if kind == "npy" else _table_from_text)(path, spec)
    unit = "row" if kind == "npy" else "line"
    if len(table) == 0:
        return np.zeros((spec.persons, 0, spec.joints, spec.coords), dtype=np.float32)
    width = table.shape[1]
    bad = [c for c in spec.skip_columns if c >= width]
    if bad:
        raise ImportFileError(
            f"{path}: {unit} {lines[0]}: {width} columns, but skip_columns lists column(s) {bad} "
            "(columns count from 0)"
        )
    keep = [c for c in range(width) if c not in set(spec.skip_columns)]
    values = table[:, keep]
    per_row, per_frame = values.shape[1], spec.values_per_frame
    what = f"{spec.persons} person(s) x {spec.joints} joints x {spec.coords} coords = {per_frame} values"
    if per_row == 0 or per_frame % per_row:
        raise ImportFileError(
            f"{path}: {unit} {lines[0]}: {per_row} values per row after skipping columns "
            f"{spec.skip_columns}; a frame needs {what}, which is not a whole number of rows"
        )
    rows_per_frame = per_frame // per_row
    if len(values) % rows_per_frame:
        complete = len(values) // rows_per_frame * rows_per_frame
        raise ImportFileError(
            f"{path}: {unit} {lines[complete]}: the last frame is incomplete: {len(values)} data rows "
            f"are not a multiple of the {rows_per_frame} rows a frame takes ({what}, {per_row} per row)"
        )
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise ImportFileError(f"{path}: {unit} {lines[row]}: NaN or infinite value, expected finite numbers")
    frames = values.reshape(-1, spec.persons, spec.joints, spec.coords)
    return np.ascontiguousarray(frames.transpose(1, 0, 2, 3), dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# the dataset


def _norm(value: str | int) -> str:
    """Field values compared as text, numbers without leading zeros."""
    text = str(value).strip()
    return str(int(text)) if text.isdigit() else text


@dataclass
class ImportReport:
    """What an import did: counts, dropped sequences (and why), split sizes."""

    files_found: int
    samples: int
    classes: int
    splits: dict[str, int]
    dropped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    excluded: int = 0  # files not in the spec's include list
    seconds: float = 0.0


def _label(value: str, spec: ImportSpec, path: Path, spec_file: _SpecFile) -> int:
    if value in spec.classes:
        return spec.classes.index(value)
    if not value.lstrip("-").isdigit():
        raise ImportFileError(
            f"{path}: label field {value!r} is neither a number nor one of the spec's classes"
        )
    label = int(value) - spec.first_label
    if not 0 <= label < len(spec.classes):
        line = spec_file.lines.get(("classes",), 1)
        raise ImportFileError(
            f"{path}: label field {value!r} is class {label} counting from first_label "
            f"{spec.first_label}, but the spec lists {len(spec.classes)} classes (key 'classes', "
            f"{spec_file.path} line {line})"
        )
    return label


def _splits(
    annotations: list[dict[str, Any]], spec: ImportSpec, spec_file: _SpecFile
) -> dict[str, list[str]]:
    by = spec.split.by
    values = sorted({_norm(a[by]) for a in annotations}, key=lambda v: (not v.isdigit(), v.zfill(12)))

    def members(selected: set[str]) -> list[str]:
        return [a["frame_dir"] for a in annotations if _norm(a[by]) in selected]

    def check_listed(listed: list[str], key: tuple) -> None:
        unknown = sorted(set(listed) - set(values))
        if unknown:
            raise spec_file.error(key, f"{by} value(s) {unknown} match no imported file (present: {values})")
        twice = [v for v, n in Counter(listed).items() if n > 1]
        if twice:
            raise spec_file.error(key, f"{by} value(s) {twice} are listed more than once")

    if spec.split.train is not None:
        train = [_norm(v) for v in spec.split.train]
        check_listed(train, ("split", "train"))
        return {"train": members(set(train)), "test": members(set(values) - set(train))}
    if isinstance(spec.split.folds, int):
        if spec.split.folds > len(values):
            raise spec_file.error(
                ("split", "folds"), f"{spec.split.folds} folds, but {by} has only {len(values)} values"
            )
        folds = [values[k :: spec.split.folds] for k in range(spec.split.folds)]
    else:
        folds = [[_norm(v) for v in fold] for fold in spec.split.folds]
        check_listed([v for fold in folds for v in fold], ("split", "folds"))
        missing = sorted(set(values) - {v for fold in folds for v in fold})
        if missing:
            raise spec_file.error(("split", "folds"), f"{by} value(s) {missing} are in no fold")
    out = {}
    for k, fold in enumerate(folds):
        out[f"fold{k}_train"] = members(set(values) - set(fold))
        out[f"fold{k}_test"] = members(set(fold))
    return out


def import_dataset(
    spec_path: str | Path,
    out: str | Path,
    root: str | Path | None = None,
    skip_errors: bool = False,
    progress: bool = False,
) -> ImportReport:
    """Read every file the spec matches and write the annotation pickle ``out``.

    A file that does not match the spec raises :class:`ImportFileError` before anything is written;
    with ``skip_errors`` it is left out and listed in the report's ``failed`` instead.
    """
    from lightact.utils import progress_bar

    start = time.perf_counter()
    spec, spec_file = load_import_spec(spec_path, root)
    if not spec.root.is_dir():
        raise spec_file.error(("root",), f"dataset folder {spec.root} does not exist (or pass --root)")
    paths = sorted(p for p in spec.root.glob(spec.files) if p.is_file())
    if not paths:
        raise spec_file.error(("files",), f"no file under {spec.root} matches {spec.files!r}")
    fields_key = ("fields", "regex" if spec.fields.regex is not None else "pattern")
    matcher = spec.fields.compiled()
    include = _read_include(spec, spec_file)
    annotations: list[dict[str, Any]] = []
    dropped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    excluded: list[str] = []
    seen_ids: dict[str, Path] = {}
    with progress_bar(progress, unit="files") as bar:
        task = bar.add_task("importing", total=len(paths))
        for path in paths:
            bar.advance(task)
            relative = path.relative_to(spec.root).as_posix()
            try:
                match = matcher.fullmatch(relative)
                if match is None:
                    line = spec_file.lines.get(fields_key, 1)
                    raise ImportFileError(
                        f"{path}: its path {relative!r} does not match the spec's {fields_key[1]} "
                        f"(key 'fields.{fields_key[1]}', {spec_file.path} line {line})"
                    )
                found = {k: v for k, v in match.groupdict().items() if v is not None}
                label = _label(found[LABEL_FIELD], spec, path, spec_file)
                sample = spec.id.format(**found) if spec.id else relative.rsplit(".", 1)[0]
                if include is not None and sample not in include:
                    excluded.append(sample)
                    continue
                if sample in seen_ids:
                    raise ImportFileError(f"{path}: sample id {sample!r} is also that of {seen_ids[sample]}")
                keypoint = read_sequence(path, spec)
            except ImportFileError as err:
                if not skip_errors:
                    raise
                failed.append({"file": str(path), "error": str(err)})
                continue
            seen_ids[sample] = path
            if keypoint.shape[1] == 0 or not np.any(keypoint):
                reason = "no data row" if keypoint.shape[1] == 0 else "every coordinate is zero"
                dropped.append({"file": str(path), "sample": sample, "reason": reason})
                continue
            extra = {k: v for k, v in found.items() if k != LABEL_FIELD}
            annotations.append(
                {
                    **extra,
                    "frame_dir": sample,
                    "label": label,
                    "keypoint": keypoint,
                    "total_frames": keypoint.shape[1],
                }
            )
    if include is not None:
        unmatched = sorted(include - set(seen_ids) - {d["sample"] for d in dropped})
        if unmatched:
            raise spec_file.error(
                ("include",), f"{len(unmatched)} listed id(s) match no file, e.g. {unmatched[:3]}"
            )
    if not annotations:
        raise spec_file.error(("files",), "no usable sequence was imported")
    splits = _splits(annotations, spec, spec_file)
    data = {
        "split": splits,
        "annotations": annotations,
        "classes": list(spec.classes),
        "source": {
            "spec": str(spec_path),
            "root": str(spec.root),
            "dropped": dropped,
            "failed": failed,
            "excluded": excluded,
        },
    }
    save_pickle(data, out)
    return ImportReport(
        files_found=len(paths),
        samples=len(annotations),
        classes=len(spec.classes),
        splits={k: len(v) for k, v in splits.items()},
        dropped=dropped,
        failed=failed,
        excluded=len(excluded),
        seconds=time.perf_counter() - start,
    )


def _read_include(spec: ImportSpec, spec_file: _SpecFile) -> set[str] | None:
    if spec.include is None:
        return None
    path = spec.include if spec.include.is_absolute() or spec.include.is_file() else spec.root / spec.include
    if not path.is_file():
        raise spec_file.error(("include",), f"id list {spec.include} does not exist (nor under root)")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}
