"""The model builder: the only code that turns a config (`cfg.MODEL.*`) into modules.

`build_model(cfg, data)` checks the config (every unsupported option is one `DeticError` line), then calls the
builder registered for `MODEL.META_ARCHITECTURE`; each meta-architecture builder picks its backbone
family from `backbone.BACKBONE_BUILDERS`. Files named by the config (the class-frequency JSON, CLIP's BPE
merges) are read by the engine (through `detic_cli.data` and `detic_cli.clip`) and handed over as `ModelData`;
nothing here opens a file.
"""

from detic_cli.modeling.builders.backbone import build_backbone, build_bottom_up
from detic_cli.modeling.builders.model import META_ARCHITECTURES, build_model
from detic_cli.modeling.builders.model_data import ModelData
from detic_cli.modeling.builders.proposal_generator import build_centernet, build_rpn, feature_shapes
from detic_cli.modeling.builders.resnet import build_res5_stage, build_resnet_backbone
from detic_cli.modeling.builders.roi_heads import build_box_losses

__all__ = ["META_ARCHITECTURES", "ModelData", "build_backbone", "build_bottom_up", "build_box_losses",
           "build_centernet", "build_model", "build_res5_stage", "build_resnet_backbone", "build_rpn", "feature_shapes"]
