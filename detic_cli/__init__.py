"""detic: Detic open-vocabulary detection with official checkpoints and configs.

The public API (`Detector`, `Result`, `build_vocab`, `evaluate`, `label`, `zoo_list`, `zoo_pull`, `DeticError`) is
imported on first use, so `import detic_cli` (and `detic --help`) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {"Detector": "detic_cli.api", "Result": "detic_cli.api", "build_vocab": "detic_cli.api",
         "evaluate": "detic_cli.api", "label": "detic_cli.api", "zoo_list": "detic_cli.api",
         "zoo_pull": "detic_cli.api", "DeticError": "detic_cli.errors"}
__all__ = ["DeticError", "Detector", "Result", "__version__", "build_vocab", "evaluate", "label", "zoo_list",
           "zoo_pull"]

if TYPE_CHECKING:
    from detic_cli.api import Detector, Result, build_vocab, evaluate, label, zoo_list, zoo_pull
    from detic_cli.errors import DeticError


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'detic_cli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
