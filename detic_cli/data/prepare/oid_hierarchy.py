"""The OpenImages label hierarchy (`{"LabelName", "Subcategory": [...]}` tree) as ancestor and
descendant sets per class, as TensorFlow's `oid_hierarchical_labels_expansion.py` builds them: the
root (a virtual "entity" node) is skipped, a class listed under several parents gets the ancestors
of every occurrence, each relative counted once.
"""

from __future__ import annotations

from typing import Any

from detic_cli.errors import DeticError


class Hierarchy:
    """Class expansion over category ids; `ids` maps a LabelName (freebase id) to its category id."""

    def __init__(self, tree: dict[str, Any], ids: dict[str, int]) -> None:
        self._ids = ids
        self._ancestors: dict[str, set[str]] = {}
        self._descendants: dict[str, set[str]] = {}
        for child in tree.get("Subcategory", []):
            self._walk(child, [])

    def _walk(self, node: dict[str, Any], path: list[str]) -> set[str]:
        label = node["LabelName"]
        if label not in self._ids:
            raise DeticError(f"label hierarchy: {label} is not one of the 500 challenge classes")
        self._ancestors.setdefault(label, set()).update(path)
        below: set[str] = set()
        for child in node.get("Subcategory", []):
            below |= self._walk(child, path + [label])
        self._descendants.setdefault(label, set()).update(below)
        return below | {label}

    def _expand(self, label: str, relatives: dict[str, set[str]]) -> list[int]:
        if label not in self._ids:
            raise DeticError(f"OpenImages label {label} is not one of the 500 challenge classes")
        return [self._ids[label]] + sorted(self._ids[r] for r in relatives.get(label, ()))

    def with_ancestors(self, label: str) -> list[int]:
        """Category id of `label`, then those of all its ancestors (sorted)."""
        return self._expand(label, self._ancestors)

    def with_descendants(self, label: str) -> list[int]:
        """Category id of `label`, then those of all its descendants (sorted)."""
        return self._expand(label, self._descendants)
