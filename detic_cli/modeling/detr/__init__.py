"""Deformable DETR (two-stage, box refinement) with its learned closed-vocabulary classifier."""

from detic_cli.modeling.detr.build import build_deformable_detr

__all__ = ["build_deformable_detr"]
