"""Imports between the top-level parts of `detic_cli` only point down the layers below.

Every module's imports (module level and inside functions; relative ones resolved) are read with `ast`; an import
may name its own part or a part in a lower layer, never one above it nor a sibling in the same layer. Type-only
imports (`if TYPE_CHECKING:`) are not runtime dependencies and are not checked. A new top-level part must be
placed in LAYERS.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "detic_cli"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Top to bottom. "" is the package itself (`detic_cli/__init__.py`: `__version__` and the lazily imported public API).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("api", "serve"),
    ("export",),
    ("engine",),
    ("evaluation",),
    ("data",),
    ("vocab",),
    ("clip",),
    ("zoo", "checkpoint"),
    ("modeling",),
    ("layers",),
    ("structures",),
    ("config", "progress", "package_data", "utils"),
    ("errors", ""),
)

# (importing file, imported module) -> why it is still there. An entry that no longer occurs fails the test: delete it.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def _part(module: str, names: list[str], root: Path) -> str:
    """The top-level part an absolute `detic_cli...` import names ("" for the package itself)."""
    parts = module.split(".")
    if len(parts) > 1:
        return parts[1]
    subpackages = [n for n in names if (root / n).is_dir() or (root / f"{n}.py").is_file()]
    return subpackages[0] if subpackages else ""


def _absolute(node: ast.ImportFrom, module_path: tuple[str, ...], is_package: bool) -> str:
    """The absolute module a (possibly relative) `from ... import` names."""
    if node.level == 0:
        return node.module or ""
    base = module_path if is_package else module_path[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def imports_of(path: Path, root: Path) -> list[tuple[str, str]]:
    """(imported module, its top-level part) for every runtime `detic_cli` import in the file at `path`."""
    rel = path.relative_to(root.parent).with_suffix("")
    module_path, is_package = tuple(rel.parts), rel.name == "__init__"
    if is_package:
        module_path = module_path[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, _part(a.name, [], root)) for a in node.names if a.name.split(".")[0] == root.name]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module_path, is_package)
            if target.split(".")[0] == root.name:
                found.append((target, _part(target, [a.name for a in node.names], root)))
    return found


def layering_violations(root: Path, layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[tuple[str, str, str]]:
    """(file relative to `root`, imported module, reason) for every import that does not point down the layers."""
    rank = {part: i for i, layer in enumerate(layers) for part in layer}
    out: list[tuple[str, str, str]] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        own = "" if rel.as_posix() == "__init__.py" else rel.parts[0].removesuffix(".py")
        if own not in rank:
            out.append((rel.as_posix(), "", f"top-level part {own!r} is not placed in LAYERS"))
            continue
        for target, part in imports_of(path, root):
            if part == own:
                continue
            if part not in rank:
                out.append((rel.as_posix(), target, f"imports {part!r}, which is not placed in LAYERS"))
            elif rank[part] <= rank[own]:
                where = "a sibling in its layer" if rank[part] == rank[own] else "a higher layer"
                out.append((rel.as_posix(), target, f"{own or PACKAGE} imports {part or PACKAGE}, {where}"))
    return out


def test_package_imports_point_down_the_layers():
    found = layering_violations(ROOT)
    unexpected = [f"{path}: {target} ({why})" for path, target, why in found if (path, target) not in KNOWN_VIOLATIONS]
    assert not unexpected, "imports against the layering:\n" + "\n".join(unexpected)
    stale = set(KNOWN_VIOLATIONS) - {(path, target) for path, target, _ in found}
    assert not stale, f"fixed, remove from KNOWN_VIOLATIONS: {sorted(stale)}"


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    """A tiny `detic_cli` tree whose imports all point down."""
    root = tmp_path / PACKAGE
    _write(root, "__init__.py", "__version__ = '0'\n")
    _write(root, "errors.py", "class DeticError(Exception):\n    pass\n")
    _write(root, "modeling/__init__.py", "")
    _write(root, "modeling/head.py", "from detic_cli.errors import DeticError\nfrom . import __name__ as _n\n")
    _write(root, "engine/__init__.py", "")
    _write(root, "engine/job.py", "import detic_cli.modeling.head\nfrom detic_cli import __version__\n"
                                  "from ..modeling import head\n")
    return root


def test_checker_passes_a_clean_tree(synthetic: Path):
    assert layering_violations(synthetic) == []


@pytest.mark.parametrize(("rel", "text", "target"), [
    ("modeling/bad.py", "from detic_cli.engine.job import x\n", "detic_cli.engine.job"),
    ("modeling/lazy.py", "def f():\n    import detic_cli.engine.job\n", "detic_cli.engine.job"),
    ("modeling/sub/rel.py", "from ...engine import job\n", "detic_cli.engine"),
    ("modeling/pkg.py", "from detic_cli import engine\n", "detic_cli"),
    ("zoo/side.py", "from detic_cli.checkpoint import io\n", "detic_cli.checkpoint"),
])
def test_checker_reports_a_planted_violation(synthetic: Path, rel: str, text: str, target: str):
    _write(synthetic, rel, text)
    found = layering_violations(synthetic)
    assert [(path, imported) for path, imported, _ in found] == [(rel, target)]
    assert "higher layer" in found[0][2] or "sibling" in found[0][2]


def test_checker_skips_type_only_imports_and_reports_unplaced_parts(synthetic: Path):
    _write(synthetic, "layers/typed.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                         "    from detic_cli.engine.job import x\n")
    assert layering_violations(synthetic) == []
    _write(synthetic, "newpart/mod.py", "")
    assert layering_violations(synthetic) == [
        ("newpart/mod.py", "", "top-level part 'newpart' is not placed in LAYERS")]
