"""Import lvis-api 0.5.3 on NumPy >= 1.24, which removed the `np.float` alias it still uses.

The shim only adds the missing builtin aliases (`np.float`, `np.int`, `np.bool`) that lvis-api
references, each set to the Python builtin the alias always meant; nothing else is changed.
"""

from __future__ import annotations

import builtins
from types import ModuleType

import numpy as np

_ALIASES = ("float", "int", "bool")


def _add_numpy_aliases() -> None:
    for name in _ALIASES:
        if name not in np.__dict__:
            setattr(np, name, getattr(builtins, name))


def import_lvis() -> ModuleType:
    """The `lvis` package (LVIS, LVISResults, LVISEval), importable and runnable on NumPy 2."""
    _add_numpy_aliases()
    import lvis

    return lvis
