"""Class names from the command line, a text file or a COCO/LVIS annotation file; checks and warnings."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from detic_cli.errors import DeticError


def warn(message: str) -> None:
    """One warning line on stderr."""
    Console(stderr=True).print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _quoted(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def require_names(text: str, source: str) -> None:
    """Raises DeticError when comma-separated `text` (from `source`, e.g. --vocab) holds no class name."""
    if not any(part.strip() for part in text.split(",")):
        raise DeticError(f"{source} {text!r}: no class names; give comma-separated names such as \"cat,dog\"")


def split_names(text: str, source: str = "--vocab") -> list[str]:
    """`"cat, dog,,"` -> `["cat", "dog"]`: split on commas, strip, drop empty entries (with a warning).

    Raises DeticError when no name is left (empty text or only commas).
    """
    require_names(text, source)
    parts = [p.strip() for p in text.split(",")]
    names = [p for p in parts if p]
    if len(names) < len(parts):
        warn(f"{source}: ignored {len(parts) - len(names)} empty name(s) between commas")
    return names


def read_names_file(path: str | Path, source: str = "--names-file") -> list[str]:
    """One name per line (UTF-8, BOM allowed), stripped; blank lines are skipped (with a warning
    when they are not just at the end). Raises DeticError for a missing, undecodable or empty file."""
    path = Path(path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError as exc:
        raise DeticError(f"{source} {path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise DeticError(f"{source} {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise DeticError(f"{source} {path}: cannot be read ({exc.strerror})") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise DeticError(f"{source} {path}: no class names (expected one name per line)")
    if len(names) < len(lines):
        warn(f"{source} {path}: skipped {len(lines) - len(names)} blank line(s)")
    return names


def duplicate_names(names: list[str]) -> list[str]:
    """Names equal to an earlier one ignoring case and surrounding space, in order."""
    seen: set[str] = set()
    dups = []
    for name in names:
        key = " ".join(name.casefold().split())
        if key in seen:
            dups.append(name)
        seen.add(key)
    return dups


def drop_duplicates(names: list[str], source: str = "--vocab") -> list[str]:
    """Keep the first of names equal ignoring case (CLIP lower-cases, so they embed identically)."""
    dups = duplicate_names(names)
    if not dups:
        return names
    warn(f"{source}: dropped {len(dups)} duplicate name(s) (case-insensitive): {_quoted(dups)}")
    seen: set[str] = set()
    kept = []
    for name in names:
        key = " ".join(name.casefold().split())
        if key not in seen:
            kept.append(name)
            seen.add(key)
    return kept


def warn_duplicates(names: list[str], source: str) -> None:
    """Warn that duplicate names are kept (each line keeps its row) and give identical rows."""
    dups = duplicate_names(names)
    if dups:
        warn(f"{source}: {len(dups)} duplicate name(s) (case-insensitive) kept so rows match the input "
             f"order; their rows are identical: {_quoted(dups)}")


def fix_space(names: list[str]) -> list[str]:
    """Underscores to spaces (`aerosol_can` -> `aerosol can`), the original `--fix_space`."""
    return [n.replace("_", " ") for n in names]


def read_ann_categories(path: str | Path) -> tuple[list[str], list[list[str]] | None]:
    """COCO/LVIS json -> (names sorted by category id, per-category `synonyms` or None if absent).

    Raises DeticError for a missing file, bad JSON or categories without id/name.
    """
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DeticError(f"--ann {path}: file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeticError(f"--ann {path}: not valid UTF-8 JSON ({exc})") from exc
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats:
        raise DeticError(f"--ann {path}: no 'categories' list; pass a COCO or LVIS annotation file")
    try:
        cats = sorted(cats, key=lambda c: c["id"])
        names = [str(c["name"]) for c in cats]
    except (KeyError, TypeError) as exc:
        raise DeticError(f"--ann {path}: every category needs an 'id' and a 'name'") from exc
    if not all(isinstance(c.get("synonyms"), list) for c in cats):
        return names, None
    return names, [[str(s) for s in c["synonyms"]] for c in cats]
