"""Reading and writing the MMAction2/pyskl skeleton annotation pickle without trusting it.

``pickle.load`` on a downloaded file can run arbitrary code. The restricted unpickler below resolves
only the handful of globals that plain containers, numbers, strings and numpy arrays need; any other
global is refused before it is imported, so nothing in the file runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from lightact.errors import DataError, UnsafeFileError
from lightact.utils import atomic_write

# The globals a pickle of dicts/lists/tuples/str/int/float/ndarray/np.dtype/np scalars may reference.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("builtins", "slice"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # numpy writes array bytes through it under protocol 2
    # Under protocol 5 numpy rebuilds arrays from the pickle's own bytes with this helper.
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class UnsafePickleError(UnsafeFileError, pickle.UnpicklingError):
    """The pickle references something other than plain data."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: annotation pickles may hold only containers, numbers, "
            "strings and numpy arrays"
        )


def safe_load_pickle(path: str | Path) -> Any:
    """Load a pickle that may only contain plain data; raise :class:`UnsafePickleError` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an annotation pickle")
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    data = path.read_bytes()
    if data.startswith(b"\x93NUMPY"):
        raise DataError(
            f"{path} is a NumPy array (.npy), not an annotation pickle: convert it with the schema "
            "of docs/formats.md (predict reads .npy arrays directly)"
        )
    if not data:
        raise DataError(f"{path} is empty (0 bytes): not an annotation pickle")
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, MemoryError, RecursionError) as err:
        raise DataError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None
    except Exception as err:  # noqa: BLE001 - a corrupt pickle fails in many ways (TypeError, ...)
        raise DataError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None


def save_pickle(obj: Any, path: str | Path) -> None:
    """Write atomically: a crash never leaves a half-written annotation file behind."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=4)

    atomic_write(Path(path), write)
