"""Where still images come from: Stanford 40 Actions, a class-per-folder tree, or the embedded set.

Every reader returns one :class:`ImageSamples` per split: class names, a stable key per image (used
to key the teacher-logit cache), labels, and either file paths or in-memory pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


class ImageReadError(ValueError):
    """An image file cannot be decoded; the message names the file."""


@dataclass
class ImageSamples:
    """The images of one split. ``paths`` (files) or ``arrays`` (uint8 ``[N, H, W, 3]``) is set."""

    classes: list[str]
    keys: list[str]
    labels: np.ndarray
    paths: list[Path] | None = None
    arrays: np.ndarray | None = None
    skipped: list[Path] = field(default_factory=list)  # unreadable files left out (on_corrupt="skip")

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, index: int, min_size: int | None = None) -> Tensor:
        """Image ``index`` as uint8 ``[3, H, W]``. ``min_size`` lets JPEG decoding skip detail that
        the resize would throw away anyway (much faster on large photos)."""
        if self.arrays is not None:
            return torch.from_numpy(self.arrays[index]).permute(2, 0, 1)
        return decode_image(self.paths[index], min_size)


def decode_image(path: Path, min_size: int | None = None) -> Tensor:
    """Decode a file to uint8 ``[3, H, W]`` RGB; any failure is an :class:`ImageReadError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if min_size is not None and image.format == "JPEG":
                # draft() picks a DCT scale (1/2, 1/4, 1/8) that keeps both sides >= the request.
                image.draft("RGB", (min_size, min_size))
            array = np.asarray(image.convert("RGB"))
    except Exception as err:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ...) on bad files
        raise ImageReadError(f"{path}: cannot read image ({type(err).__name__}: {err})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def drop_unreadable(samples: ImageSamples, min_size: int | None = None) -> ImageSamples:
    """Decode every file once and leave out those that fail, with one warning naming them."""
    if samples.paths is None:
        return samples
    bad = []
    for i, path in enumerate(samples.paths):
        try:
            decode_image(path, min_size)
        except ImageReadError:
            bad.append(i)
    if not bad:
        return samples
    keep = np.setdiff1d(np.arange(len(samples)), bad)
    skipped = [samples.paths[i] for i in bad]
    shown = ", ".join(str(p) for p in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
    warnings.warn(f"skipped {len(skipped)} unreadable image(s): {shown}", stacklevel=2)
    return ImageSamples(
        classes=samples.classes,
        keys=[samples.keys[i] for i in keep],
        labels=samples.labels[keep],
        paths=[samples.paths[i] for i in keep],
        skipped=samples.skipped + skipped,
    )


# --------------------------------------------------------------------------------------------------
# Stanford 40 Actions


def stanford40_label(file_name: str) -> str:
    """``"riding_a_bike_123.jpg"`` -> ``"riding_a_bike"``: the name without its trailing ``_NNN.ext``."""
    stem = Path(file_name).stem
    action, sep, number = stem.rpartition("_")
    if not sep or not action or not number.isdigit():
        raise ValueError(f"{file_name!r} is not a Stanford 40 image name (<action>_<NNN>.jpg)")
    return action


def _stanford40_actions(root: str | Path) -> Path:
    return Path(root) / "ImageSplits" / "actions.txt"


def image_dataset_format(root: str | Path) -> str:
    """``"stanford40"`` for a Stanford 40 folder (it has ``ImageSplits/actions.txt``), otherwise
    ``"folder"`` (a class-per-folder tree)."""
    return "stanford40" if _stanford40_actions(root).is_file() else "folder"


def stanford40_classes(root: Path) -> list[str]:
    """Class names in the order of ``ImageSplits/actions.txt`` (header line, then ``action<TAB>count``)."""
    actions = _stanford40_actions(root)
    if not actions.is_file():
        raise FileNotFoundError(
            f"{actions} not found: is {root} the Stanford 40 folder (ImageSplits/, JPEGImages/)?"
        )
    names = []
    for number, line in enumerate(actions.read_text().splitlines()[1:], start=2):
        if line.strip():
            name = line.split()[0]
            if name in names:
                raise ValueError(f"{actions}:{number}: class {name!r} is listed twice")
            names.append(name)
    if not names:
        raise ValueError(f"{actions} lists no classes")
    return names


def _split_file_names(root: Path, split: str, classes: list[str]) -> list[tuple[str, Path, int]]:
    """(file name, list file, line number) of the official ``split`` ("train" or "test")."""
    splits = root / "ImageSplits"
    lists = [splits / f"{split}.txt"]
    if not lists[0].is_file():  # some copies keep only the per-class lists
        lists = [splits / f"{name}_{split}.txt" for name in classes]
        missing = [p for p in lists if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"neither {splits / f'{split}.txt'} nor {missing[0]} exists")
    names = []
    for path in lists:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                names.append((line.strip(), path, number))
    return names


def read_stanford40(root: str | Path, split: str) -> ImageSamples:
    """The official Stanford 40 ``split`` ("train": 100 images per class, or "test")."""
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"Stanford 40 has the splits 'train' and 'test', not {split!r}")
    classes = stanford40_classes(root)
    index = {name: i for i, name in enumerate(classes)}
    images = root / "JPEGImages"
    keys, labels, paths = [], [], []
    for name, list_file, number in _split_file_names(root, split, classes):
        try:
            action = stanford40_label(name)
        except ValueError as err:
            raise ValueError(f"{list_file}:{number}: {err}") from None
        if action not in index:
            raise ValueError(f"{list_file}:{number}: {name} has class {action!r}, not in actions.txt")
        path = images / name
        if not path.is_file():
            raise FileNotFoundError(f"{list_file}:{number}: {path} does not exist")
        keys.append(name)
        labels.append(index[action])
        paths.append(path)
    if len(set(keys)) != len(keys):
        raise ValueError(f"{root / 'ImageSplits'}: the {split} split lists an image twice")
    return ImageSamples(classes, keys, np.array(labels, dtype=np.int64), paths=paths)


# --------------------------------------------------------------------------------------------------
# Class-per-folder trees


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_image_folder(
    root: str | Path,
    split: str,
    holdout_fraction: float = 0.2,
    split_names: tuple[str, ...] = ("train", "val", "test"),
) -> ImageSamples:
    """``root/<split>/<class>/*.jpg`` (torchvision's ImageFolder, one tree per split), or
    ``root/<class>/*.jpg`` with no split folders: then every class's files, sorted by name, give
    their last ``holdout_fraction`` to "val"/"test" (the same images) and the rest to "train".

    Classes are the sorted folder names of all splits together, so every split numbers them alike.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    present = [name for name in split_names if (root / name).is_dir()]
    if present:
        if split not in present:
            raise FileNotFoundError(f"{root} has split folders {present} but no {split!r}")
        classes = sorted({d.name for name in present for d in _class_dirs(root / name)})
        files = {d.name: sorted(filter(_is_image, d.rglob("*"))) for d in _class_dirs(root / split)}
    else:
        classes = [d.name for d in _class_dirs(root)]
        files = {}
        for d in _class_dirs(root):
            found = sorted(filter(_is_image, d.rglob("*")))
            held = int(round(len(found) * holdout_fraction)) if len(found) > 1 else 0
            files[d.name] = found[len(found) - held :] if split != "train" else found[: len(found) - held]
    if not classes:
        raise ValueError(f"{root} has no class folders (expected {root}/<class>/<image> files)")
    keys, labels, paths = [], [], []
    for label, name in enumerate(classes):
        for path in files.get(name, []):
            keys.append(str(path.relative_to(root)))
            labels.append(label)
            paths.append(path)
    if not paths:
        raise ValueError(f"{root}: the {split!r} split holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return ImageSamples(classes, keys, np.array(labels, dtype=np.int64), paths=paths)


# --------------------------------------------------------------------------------------------------
# The embedded synthetic set


def synthetic_samples(
    split: str, samples_per_class: int, seed: int, size: int, test_fraction: float
) -> ImageSamples:
    """The embedded dataset's ``split`` ("train", or "val"/"test": the same held-out images)."""
    from lightact.data.synthetic.image import generate_image_dataset

    data = _synthetic_cache(samples_per_class, seed, size, test_fraction, generate_image_dataset)
    which = data.select("train" if split == "train" else "test")
    return ImageSamples(
        data.classes, [data.keys[i] for i in which], data.labels[which], arrays=data.images[which]
    )


_SYNTH: dict[tuple, object] = {}


def _synthetic_cache(samples_per_class, seed, size, test_fraction, generate):
    # Rendering takes seconds; train, val and test read the same set once per process.
    key = (samples_per_class, seed, size, test_fraction)
    if key not in _SYNTH:
        _SYNTH.clear()
        _SYNTH[key] = generate(
            samples_per_class=samples_per_class, seed=seed, size=size, test_fraction=test_fraction
        )
    return _SYNTH[key]
