"""Read legacy `.pkl` weight files (Detectron/caffe2 and detectron2 pickles of numpy arrays) without running code.

Only plain containers, strings, numbers and numpy arrays/scalars of numeric dtypes are rebuilt; any other
global a pickle names (a function to call, a class to build) is refused before it is imported.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from detic_cli.errors import DeticError, brief

# (module, name) pairs a pickle of numpy arrays needs; both numpy 1.x (`numpy.core`) and 2.x (`numpy._core`).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): dict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")


def _encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` restricted to text -> bytes (what array pickles use it for)."""
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise pickle.UnpicklingError("_codecs.encode called with non-text arguments")
    return text.encode(encoding)


def _multiarray(name: str) -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, name)


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` only knows plain containers and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):  # latin1 byte strings of protocol-2 array pickles
            return _encode
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in _RECONSTRUCT_MODULES and name in ("_reconstruct", "scalar"):
            return _multiarray(name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is forbidden")


def _check_values(obj: Any, depth: int = 0) -> None:
    """Refuse arrays of Python objects (they could smuggle anything a container cannot hold)."""
    if depth > 32:
        raise DeticError("nesting deeper than 32 levels")
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise DeticError("an array of Python objects")
    if isinstance(obj, dict):
        for value in obj.values():
            _check_values(value, depth + 1)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _check_values(value, depth + 1)


def read_legacy_pickle(path: str | Path) -> dict[str, Any]:
    """The top-level dict of a legacy pickle (latin1 strings, as Python 2 wrote them), refusing any code."""
    path = Path(path)
    if not path.is_file():
        raise DeticError(f"{path}: checkpoint not found")
    try:
        with path.open("rb") as f:
            obj = RestrictedUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        text = brief(exc)
        if "forbidden" in text:
            raise DeticError(f"{path}: refused to load: the pickle asks for {text.split()[1]}, which is not a plain "
                             "container or numpy array (a pickle that would run code); only weights are loaded"
                             ) from exc
        raise DeticError(f"{path}: not a readable pickle (truncated or corrupt: {text})") from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        raise DeticError(f"{path}: not a readable pickle (truncated or corrupt: "
                         f"{brief(exc)})") from exc
    try:
        _check_values(obj)
    except DeticError as exc:
        raise DeticError(f"{path}: refused to load: the pickle holds {exc}; only numeric arrays are loaded") from exc
    if not isinstance(obj, dict):
        raise DeticError(f"{path}: expected a dict of arrays, found {type(obj).__name__}")
    return obj
