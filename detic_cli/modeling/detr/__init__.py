"""Deformable DETR (two-stage, box refinement) with its learned closed-vocabulary classifier.

Built from a config by `detic_cli.modeling.builders` (MODEL.META_ARCHITECTURE "DeformableDetr").
"""
