"""Files and windows: which files of a folder a predictor reads, where windows start, and the
loop that predicts every file and writes its JSON (and timeline) under a safe, unique name."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from lightact.inference.results import NoPersonError, Prediction, PredictionInputError
from lightact.utils import atomic_write, safe_file_name

__all__ = ["InputFiles", "input_files", "predict_each", "unique_name", "window_starts"]


@dataclass(frozen=True)
class InputFiles:
    """The files a predictor reads: their ``suffixes`` (a folder gives those), ``kind`` (names them
    when a folder holds none), the ``errors`` that skip one file of a folder instead of stopping
    the run, and whether each prediction gets a ``timeline`` PNG beside its JSON."""

    suffixes: frozenset[str]
    kind: str
    errors: tuple[type[BaseException], ...] = (ValueError, OSError)
    timeline: bool = True


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """First frames of the windows covering ``num_frames`` frames: every ``stride`` frames while a
    whole window fits, plus one ending at the last frame if those leave a tail uncovered. A clip no
    longer than ``window`` is one window starting at 0."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be at least 1 frame, got {window} and {stride}")
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


def input_files(path: Path, suffixes: Collection[str], what: str) -> list[Path]:
    """``path`` itself, or the files of a folder whose suffix is one of ``suffixes`` (not recursive,
    sorted by name); ``what`` names them in the error for a folder that holds none."""
    if not path.exists():
        raise FileNotFoundError(f"no input at {path}")
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise PredictionInputError(f"{path} holds no {what} ({', '.join(sorted(suffixes))})")
    return files


def unique_name(text: str, used: set[str]) -> str:
    """A file-name-safe form of ``text``, numbered when ``used`` already holds it; added to ``used``."""
    name = base = safe_file_name(text, "input", strip="._")
    n = 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name


def predict_each(
    files: Sequence[Path],
    predict_one: Callable[[Path], Prediction | list[Prediction]],
    out_dir: str | Path | None,
    skip_errors: bool,
    errors: tuple[type[BaseException], ...] = (ValueError, OSError),
    timeline: bool = True,
) -> list[Prediction]:
    """``predict_one`` on every file: one prediction, or a list for a file holding several samples
    (a skeleton pickle). With ``out_dir`` write ``<name>.json`` and (with ``timeline``)
    ``<name>_timeline.png`` for each prediction: ``<name>`` is the file's stem, with ``_<sample>``
    appended when the file gave several, and numbered when names would collide. With
    ``skip_errors`` and several files, a file that fails with one of ``errors`` is skipped with a
    warning (a single file's error always propagates)."""
    out = Path(out_dir) if out_dir is not None else None
    predictions: list[Prediction] = []
    used: set[str] = set()
    for file in files:
        try:
            result = predict_one(file)
        except NoPersonError as err:
            # Nobody in the input is an answer too: a batch finds its empty result on disk.
            note = ""
            if out is not None:
                written = write_empty_result(out / f"{unique_name(file.stem, used)}.json", file, str(err))
                note = f"; wrote {written} with an empty result"
            if not skip_errors or len(files) == 1:
                raise NoPersonError(f"{err}{note}") from None
            warnings.warn(f"skipping {file}: {err}{note}", stacklevel=3)
            continue
        except errors as err:
            if not skip_errors or len(files) == 1:
                raise
            warnings.warn(f"skipping {file}: {err}", stacklevel=3)
            continue
        results = result if isinstance(result, list) else [result]
        for prediction in results:
            predictions.append(prediction)
            if out is None:
                continue
            name = file.stem
            if len(results) > 1:
                name = f"{name}_{prediction.sample or len(used)}"
            name = unique_name(name, used)
            prediction.save_json(out / f"{name}.json")
            if timeline:
                prediction.save_timeline(out / f"{name}_timeline.png")
    return predictions


def write_empty_result(path: Path, source: Path, reason: str) -> Path:
    """The JSON of an input in which nobody was found: the keys of a prediction's JSON, with no
    label, no scores and no windows, and ``reason`` saying why."""
    import json

    empty = {"source": str(source), "person": False, "reason": reason, "label": None, "score": None,
             "topk": [], "windows": []}  # fmt: skip
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(empty, indent=2)))
    return path
