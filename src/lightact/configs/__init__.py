"""The YAML files that ship inside lightact: experiment configs (this folder), joint layouts
(``layouts/``) and any other subfolder (dataset specs, ...), found by name from any directory.

A name is the file's path below this folder without ``.yaml`` (``pst_xs_synth``,
``layouts/upper_body8``); a bare stem also finds a file in a subfolder when no other file has that
stem. A leading ``configs/`` is accepted, so the repository's spelling
(``configs/pst_xs_synth.yaml``) works from any directory too. This module imports only the
standard library (the data floor uses it for layouts); ``describe`` reads YAML only when called.
"""

from __future__ import annotations

import re
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
SUFFIXES = (".yaml", ".yml")

__all__ = ["CONFIG_DIR", "catalogue", "describe", "find_packaged", "packaged_names", "resolve"]


def _name(path: Path) -> str:
    return path.relative_to(CONFIG_DIR).with_suffix("").as_posix()


def _files() -> list[Path]:
    return sorted(p for p in CONFIG_DIR.rglob("*") if p.suffix in SUFFIXES and p.is_file())


def packaged_names() -> list[str]:
    """Every shipped file's name, experiments first, then subfolders, each alphabetically."""
    return sorted((_name(p) for p in _files()), key=lambda n: (n.count("/"), n))


def find_packaged(name: str | Path) -> Path | None:
    """The shipped file ``name`` names, or None."""
    text = Path(name).as_posix().removeprefix("./").removeprefix("configs/")
    if not text or text.startswith(("/", "../")):
        return None
    stem = text.removesuffix(Path(text).suffix) if Path(text).suffix in SUFFIXES else text
    for suffix in SUFFIXES:
        candidate = CONFIG_DIR / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    if "/" not in stem:
        matches = [p for p in _files() if p.stem == stem]
        if len(matches) == 1:
            return matches[0]
    return None


def resolve(name_or_path: str | Path) -> Path | None:
    """A file that exists wins; otherwise the shipped file of that name; None when neither."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    return find_packaged(name_or_path)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`])")


def describe(path: str | Path, width: int = 110) -> str:
    """One line about a YAML file: its top-level ``description`` key, else the first sentence of
    its leading comment, cut to ``width`` characters."""
    import yaml

    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    line = ""
    if isinstance(data, dict) and isinstance(data.get("description"), str):
        line = data["description"]
    else:
        comment = []
        for raw in text.splitlines():
            stripped = raw.strip()
            if not stripped.startswith("#"):
                break
            comment.append(stripped.lstrip("#").strip())
        line = _SENTENCE_END.split(" ".join(c for c in comment if c), maxsplit=1)[0]
    line = " ".join(line.split())
    if len(line) > width:
        line = line[: width - 1].rsplit(" ", 1)[0] + "…"
    return line


def catalogue() -> list[tuple[str, str]]:
    """``(name, description)`` of every shipped file, in :func:`packaged_names` order."""
    return [(name, describe(find_packaged(name))) for name in packaged_names()]
