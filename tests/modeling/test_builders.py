"""The model builder's registry and its up-front config checks: every unsupported option is one DeticError."""

from __future__ import annotations

import pytest

from detic_cli.config import load_config
from detic_cli.errors import DeticError
from detic_cli.modeling.builders import META_ARCHITECTURES, build_model
from detic_cli.modeling.builders.backbone import BACKBONE_BUILDERS
from detic_cli.modeling.builders.custom_rcnn import HEAD_BUILDERS

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"
C4 = "BoxSup_OVCOCO_CLIP_R50_1x.yaml"
DETR = "BoxSup-DeformDETR_L_R50_4x.yaml"


def test_registries_name_every_supported_architecture():
    assert set(META_ARCHITECTURES) == {"CustomRCNN", "DeformableDetr"}
    assert "build_swintransformer_fpn_backbone" in BACKBONE_BUILDERS and "build_resnet_backbone" in BACKBONE_BUILDERS
    assert ("CenterNet", "DeticCascadeROIHeads") in HEAD_BUILDERS and ("RPN", "CustomRes5ROIHeads") in HEAD_BUILDERS


@pytest.mark.parametrize(("config", "override", "message"), [
    (R18, "MODEL.META_ARCHITECTURE=GeneralizedRCNN", "MODEL.META_ARCHITECTURE 'GeneralizedRCNN'"),
    (R18, "MODEL.TIMM.BASE_NAME=vit_base", "MODEL.TIMM.BASE_NAME 'vit_base'"),
    (R18, "MODEL.PROPOSAL_GENERATOR.NAME=RPN", "MODEL.ROI_HEADS.NAME (with MODEL.PROPOSAL_GENERATOR.NAME 'RPN')"),
    (R18, "MODEL.CENTERNET.NORM=BN", "MODEL.CENTERNET.NORM 'BN'"),
    (R18, "MODEL.ROI_BOX_HEAD.POOLER_TYPE=ROIPool", "MODEL.ROI_BOX_HEAD.POOLER_TYPE 'ROIPool'"),
    (C4, "MODEL.RESNETS.DEFORM_ON_PER_STAGE=[False,False,True,True]", "MODEL.RESNETS.DEFORM_ON_PER_STAGE"),
    (C4, "MODEL.RPN.HEAD_NAME=OtherHead", "MODEL.RPN.HEAD_NAME 'OtherHead'"),
    (C4, "MODEL.ANCHOR_GENERATOR.NAME=RotatedAnchorGenerator", "MODEL.ANCHOR_GENERATOR.NAME"),
    (C4, "MODEL.RESNETS.DEPTH=42", "MODEL.RESNETS.DEPTH 42"),
    (C4, "MODEL.RESNETS.NORM=LN", "MODEL.RESNETS.NORM 'LN'"),
    (C4, "MODEL.RPN.IN_FEATURES=['res5']", "MODEL.RPN.IN_FEATURES"),
    (DETR, "MODEL.DETR.NHEADS=7", "MODEL.DETR.HIDDEN_DIM 256 must be divisible by MODEL.DETR.NHEADS 7"),
])
def test_unsupported_options_raise_one_line(shared_dir, config, override, message):
    cfg = load_config(shared_dir / "detic-reference/configs" / config, [override])
    with pytest.raises(DeticError) as info:
        build_model(cfg)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_module_value_errors_become_one_line(shared_dir):
    cfg = load_config(shared_dir / "detic-reference/configs" / C4, ["MODEL.RESNETS.DEPTH=18"])
    with pytest.raises(DeticError, match="cannot build CustomRCNN from this config: R18/R34 need"):
        build_model(cfg)
