"""Import path kept for callers: the model builder lives in `detic_cli.modeling.builders`."""

from detic_cli.modeling.builders import build_backbone, build_box_losses, build_model

__all__ = ["build_backbone", "build_box_losses", "build_model"]
