"""Former home of the training init resolution, kept only as an import path for `cli/train.py` (and the test
that patches it there): it is `detic_cli.engine.init_weights`. Remove once nothing imports it."""

from __future__ import annotations

from detic_cli.engine.init_weights import init_name, resolve_init_spec, resolve_init_weights

__all__ = ["init_name", "resolve_init_spec", "resolve_init_weights"]
