"""Former home of backbone conversion, kept only as an import path for `cli/train.py`: pulling and converting
a backbone is `detic_cli.engine.backbone_weights`. Remove once nothing imports it."""

from __future__ import annotations

from detic_cli.engine.backbone_weights import PulledBackbone, converted_asset, pull_backbone

__all__ = ["PulledBackbone", "converted_asset", "pull_backbone"]
