"""The facts the package ships as `detic_cli.metadata` (the repository's top-level `metadata/` folder):
built-in vocabularies, the model zoo. Read through importlib.resources, so wheels, editable installs and
checkouts all find them; a missing or damaged file is one line saying to reinstall."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from detic_cli.errors import DeticError

METADATA_PACKAGE = "detic_cli.metadata"


def read_metadata(filename: str) -> Any:
    """The JSON value of one file the package ships in `detic_cli.metadata` (e.g. "zoo.json")."""
    try:
        text = files(METADATA_PACKAGE).joinpath(filename).read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ModuleNotFoundError, json.JSONDecodeError) as exc:
        raise DeticError(f"built-in data {METADATA_PACKAGE}/{filename} is missing or damaged in this install "
                         f"({type(exc).__name__}); reinstall detic") from exc
