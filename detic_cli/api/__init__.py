"""The public Python API: `Detector`, `Result`, `build_vocab`, `zoo_list`, `zoo_pull`, `evaluate`, `label`.

    from detic_cli import Detector
    detector = Detector(vocab="person,bicycle")
    result = detector("street.jpg")
"""

from __future__ import annotations

from detic_cli.api.detector import Detector
from detic_cli.api.functions import build_vocab, evaluate, label, zoo_list, zoo_pull
from detic_cli.engine.result import Result

__all__ = ["Detector", "Result", "build_vocab", "evaluate", "label", "zoo_list", "zoo_pull"]
