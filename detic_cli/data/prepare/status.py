"""Where each `detic data prepare` target stands under a datasets root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detic_cli.data.prepare.base import Target, missing_inputs, output_paths
from detic_cli.data.prepare.registry import TARGETS

PRESENT, MISSING, SOURCE_MISSING = "present", "missing", "source missing"


@dataclass(frozen=True)
class TargetStatus:
    """state: "present" (every output exists), "missing" (raw files there, outputs not: `detail` is
    the command that makes them) or "source missing" (`detail` says which raw files to put where)."""

    name: str
    state: str
    detail: str
    outputs: tuple[str, ...]


def target_status(target: Target, root: Path, *, root_flag: Path | None = None) -> TargetStatus:
    """The status of one target; `root_flag` is the --root to repeat in the suggested command."""
    if all(p.is_file() for p in output_paths(target, root)):
        return TargetStatus(target.name, PRESENT, ", ".join(target.outputs), target.outputs)
    missing = missing_inputs(target, root)
    if not missing:
        return TargetStatus(target.name, MISSING, target.command(root_flag), target.outputs)
    names = "; ".join(" or ".join(group) for group in missing)
    return TargetStatus(target.name, SOURCE_MISSING, f"needs {names}: {target.source_hint}", target.outputs)


def all_status(root: Path, *, root_flag: Path | None = None) -> list[TargetStatus]:
    """The status of every target, in registry order."""
    return [target_status(e.target, root, root_flag=root_flag) for e in TARGETS.values()]
