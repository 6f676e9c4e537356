"""`detic detect --config` with options the model builder does not support: exit code 1 and one line."""

from __future__ import annotations

import shutil

import pytest

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"


@pytest.mark.parametrize(("override", "message"), [
    ("MODEL.META_ARCHITECTURE=GeneralizedRCNN", "MODEL.META_ARCHITECTURE 'GeneralizedRCNN' is not supported"),
    ("MODEL.BACKBONE.NAME=build_mystery_backbone", "MODEL.BACKBONE.NAME 'build_mystery_backbone' is not supported"),
    ("MODEL.ROI_HEADS.NAME=StandardROIHeads", "MODEL.ROI_HEADS.NAME"),
    ("MODEL.FPN.FUSE_TYPE=max", "MODEL.FPN.FUSE_TYPE 'max' is not supported"),
    ("MODEL.ROI_BOX_HEAD.NUM_CONV=2", "MODEL.ROI_BOX_HEAD.NUM_CONV 2 is not supported"),
])
def test_unsupported_option_is_one_line(run_cli, shared_dir, parity_checkpoint, tmp_path, override, message):
    picture = tmp_path / "a.jpg"
    shutil.copy(shared_dir / "parity/images/astronaut.jpg", picture)
    code, _, err = run_cli("detect", picture, "--config", shared_dir / "detic-reference/configs" / R18,
                           "--weights", parity_checkpoint(R18), "--vocab",
                           shared_dir / "detic-metadata/lvis_v1_clip_a+cname.npy", "--device", "cpu", override)
    assert code == 1, err
    assert message in err and err.strip().count("\n") == 0 and "Traceback" not in err, err
