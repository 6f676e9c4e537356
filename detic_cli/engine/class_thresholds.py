"""Per-class score thresholds over a base threshold: "person=0.3,traffic light=0.6" or a file of them.

The model runs once at the lowest of all thresholds; each detection is then kept when its score is
above its class's threshold (the base one for classes not named). Detections of the classes not named
are exactly those of a run at the base threshold: lowering the score cut only adds candidates below
it, which class-wise NMS (a box only suppresses lower-scored ones of its class) and the top-k cut
(highest scores first) rank after every detection above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detic_cli.engine.result import Result
from detic_cli.errors import DeticError


@dataclass(frozen=True)
class ClassThresholds:
    """base: the threshold of every class not in `per_class` (name -> threshold), all in [0, 1]."""

    base: float
    per_class: dict[str, float] = field(default_factory=dict)

    @property
    def model_threshold(self) -> float:
        """The score cut the model must run with (the lowest threshold)."""
        return min([self.base, *self.per_class.values()])

    def check(self, vocabulary: list[str]) -> None:
        """Every named class must be in the vocabulary."""
        missing = [n for n in self.per_class if n not in set(vocabulary)]
        if missing:
            raise DeticError(f"--class-threshold: {', '.join(repr(n) for n in missing)} not in the vocabulary "
                             f"({len(vocabulary)} classes)")

    def apply(self, result: Result) -> Result:
        """The detections scoring above their class's threshold (strictly, as the model's own cut)."""
        if not self.per_class:
            return result
        limits = np.array([self.per_class.get(n, self.base) for n in result.class_names], dtype=np.float32)
        return result.select(result.scores > limits) if len(result) else result


def parse_class_thresholds(spec: str | Mapping[str, float] | None, base: float) -> ClassThresholds:
    """`spec`: "name=value,name=value", a file of such entries (one or more per line, `#` comments),
    or a mapping; names keep their spaces ("traffic light=0.6")."""
    if not 0.0 <= base <= 1.0:
        raise DeticError(f"--threshold {base}: must be between 0 and 1")
    if spec is None:
        return ClassThresholds(base)
    if isinstance(spec, Mapping):
        pairs = [(str(k), v) for k, v in spec.items()]
    else:
        text = spec
        if "=" not in spec and Path(spec).expanduser().is_file():
            text = Path(spec).expanduser().read_text(encoding="utf-8")
        entries = [e for line in text.splitlines() for e in line.split("#", 1)[0].split(",")]
        pairs = [_pair(e) for e in entries if e.strip()]
    per_class: dict[str, float] = {}
    for name, value in pairs:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DeticError(f"--class-threshold {name}={value}: the threshold is not a number") from None
        if not 0.0 <= number <= 1.0 or not name.strip():
            raise DeticError(f"--class-threshold {name}={value}: needs a class name and a threshold in [0, 1]")
        per_class[name.strip()] = number
    return ClassThresholds(base, per_class)


def _pair(entry: str) -> tuple[str, str]:
    if "=" not in entry:
        raise DeticError(f"--class-threshold {entry.strip()!r}: expected NAME=THRESHOLD (e.g. \"person=0.3\")")
    name, value = entry.rsplit("=", 1)
    return name, value.strip()
