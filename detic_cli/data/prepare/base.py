"""What a `detic data prepare` target is, and the checks every target shares.

A target turns raw public datasets (as downloaded, under the datasets root) into the derived files
the original Detic recipes train and evaluate on, at the exact paths the original dataset names
expect (`lvis/lvis_v1_train_norare.json`, ...). All paths in a `Target` are relative to the root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detic_cli.errors import DeticError
from detic_cli.progress import NullProgress, Progress
from detic_cli.utils import read_dataset_json

__all__ = ["ANNOTATION_KEYS", "NullProgress", "Progress", "PrepareFn", "Target", "begin", "missing_inputs",
           "output_paths", "read_annotations"]

ANNOTATION_KEYS = ("images", "categories", "annotations")


@dataclass(frozen=True)
class Target:
    """One derived-dataset recipe.

    name: the CLI name (`lvis-norare`); summary: one line on what it makes.
    inputs: raw files or folders the target reads, each entry a tuple of alternatives (any one
        suffices); a trailing "/" marks a folder.
    outputs: the files it writes (all of them present = the target is done).
    source_hint: one line on where the raw files come from and where to put them.
    downloads: public metadata files fetched at run time into DETIC_HOME (names, for the docs).
    """

    name: str
    summary: str
    inputs: tuple[tuple[str, ...], ...]
    outputs: tuple[str, ...]
    source_hint: str
    downloads: tuple[str, ...] = ()

    def command(self, root: Path | None = None) -> str:
        """The command line that makes this target (with --root when `root` is given)."""
        return f"detic data prepare {self.name}" + (f" --root {root}" if root is not None else "")


PrepareFn = Callable[..., list[Path]]


def _exists(root: Path, rel: str) -> bool:
    path = root / rel
    return path.is_dir() if rel.endswith("/") else path.is_file()


def missing_inputs(target: Target, root: Path) -> list[tuple[str, ...]]:
    """The input groups of which no alternative exists under `root`."""
    return [group for group in target.inputs if not any(_exists(root, rel) for rel in group)]


def output_paths(target: Target, root: Path) -> list[Path]:
    return [root / rel for rel in target.outputs]


def begin(target: Target, root: Path, *, force: bool, progress: Progress) -> bool:
    """True when the target must be made: its outputs are not all present (or `force`) and its
    inputs exist. A missing input is a one-line DeticError naming it and where to get it."""
    if not force and all(p.is_file() for p in output_paths(target, root)):
        progress.note(f"{target.name}: already prepared under {root} (--force remakes it)")
        return False
    missing = missing_inputs(target, root)
    if missing:
        names = "; ".join(" or ".join(str(root / rel) for rel in group) for group in missing)
        raise DeticError(f"{target.name}: raw files not found: {names} ({target.source_hint})")
    return True


def read_annotations(target: Target, path: Path, progress: Progress) -> dict[str, Any]:
    """The images, categories and annotations of a COCO/LVIS-format file, after the note `<target>: reading <path>`."""
    progress.note(f"{target.name}: reading {path}")
    return read_dataset_json(path, keys=ANNOTATION_KEYS)
