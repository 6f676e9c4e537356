"""Load detectron2-style YAML configs: `_BASE_` inheritance, merge onto defaults, KEY=VALUE overrides."""

from __future__ import annotations

import ast
import difflib
from pathlib import Path
from typing import Any

import yaml

from detic_cli.config.defaults import default_tree
from detic_cli.errors import DeticError, brief


class CfgNode(dict):
    """A nested dict with attribute access (`config.MODEL.ROI_HEADS.NUM_CLASSES`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() if isinstance(v, CfgNode) else v for k, v in self.items()}


def _to_node(tree: dict[str, Any]) -> CfgNode:
    return CfgNode({k: _to_node(v) if isinstance(v, dict) else v for k, v in tree.items()})


def _all_keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        out.append(prefix + key)
        if isinstance(value, dict):
            out.extend(_all_keys(value, prefix + key + "."))
    return out


def _unknown_key(full_key: str, root: dict[str, Any], source: str) -> DeticError:
    close = difflib.get_close_matches(full_key, _all_keys(root), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return DeticError(f"{source}: unknown config key {full_key}{hint}")


def _coerce(value: Any, default: Any, full_key: str, source: str) -> Any:
    """Bring a YAML/command-line value to the type of its default (tuples written as strings parse)."""
    if isinstance(value, str) and not isinstance(default, str) and default is not None:
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise DeticError(f"{source}: cannot parse {full_key}={value!r} as {type(default).__name__}") from exc
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(default, bool) or default is None:
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return [list(v) if isinstance(v, tuple) else v for v in value]
    if isinstance(default, (int, float, str, list)) and not isinstance(value, type(default)):
        if not (isinstance(default, int) and isinstance(value, float)):
            raise DeticError(
                f"{source}: {full_key} expects {type(default).__name__}, got {value!r}"
            )
    return value


def merge_into(base: dict[str, Any], update: dict[str, Any], source: str, root: dict[str, Any],
               prefix: str = "") -> None:
    """Merge `update` into `base` in place: dicts merge, other values replace; unknown keys are errors."""
    for key, value in update.items():
        full_key = prefix + key
        if key not in base:
            raise _unknown_key(full_key, root, source)
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise DeticError(f"{source}: {full_key} is a section, got {value!r}")
            merge_into(base[key], value, source, root, full_key + ".")
        else:
            base[key] = _coerce(value, base[key], full_key, source)


def _read_yaml(path: Path, seen: tuple[Path, ...]) -> list[tuple[dict[str, Any], str]]:
    """The chain of (mapping, source) from the root base down to `path`."""
    if path in seen:
        raise DeticError(f"{path}: _BASE_ cycle through {' -> '.join(map(str, seen))}")
    if not path.is_file():
        raise DeticError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DeticError(f"{path}: not valid YAML ({brief(exc)})") from exc
    if not isinstance(data, dict):
        raise DeticError(f"{path}: a config must be a YAML mapping")
    base = data.pop("_BASE_", None)
    chain = _read_yaml((path.parent / base).resolve(), seen + (path,)) if base else []
    return chain + [(data, str(path))]


def parse_override(word: str) -> tuple[list[str], Any]:
    """`SOLVER.BASE_LR=1e-4` -> (["SOLVER", "BASE_LR"], 0.0001); values are Python literals or strings."""
    if "=" not in word:
        raise DeticError(f"override {word!r}: write it as KEY.PATH=VALUE, e.g. INPUT.MIN_SIZE_TEST=640")
    key, raw = word.split("=", 1)
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip().split("."), value


def apply_overrides(tree: dict[str, Any], words: list[str]) -> None:
    for word in words:
        parts, value = parse_override(word)
        update: dict[str, Any] = {}
        node = update
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        merge_into(tree, update, "command line", tree)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> CfgNode:
    """Defaults, then the `_BASE_` chain of `path` (each relative to its file), then overrides."""
    tree = default_tree()
    if path is not None:
        for data, source in _read_yaml(Path(path).resolve(), ()):
            merge_into(tree, data, source, tree)
    apply_overrides(tree, list(overrides or []))
    return _to_node(tree)
