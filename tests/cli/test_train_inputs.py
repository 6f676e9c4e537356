"""`detic train`'s checks before building a model: each missing file is one line naming the command that makes it."""

from __future__ import annotations

import pytest

from detic_cli.cli.train import progress_line
from detic_cli.config import load_config
from detic_cli.data.prepare.registry import target_making
from detic_cli.data.synthetic import IMAGE_DIR, make_detection_dataset
from detic_cli.engine.train_inputs import check_datasets, side_files
from detic_cli.engine.trainer import StepInfo
from detic_cli.errors import DeticError
from detic_cli.zoo.resolve import config_path


def test_target_making_names_the_prepare_target():
    assert target_making("metadata/lvis_v1_train_cat_info.json").name == "lvis-norare"
    assert target_making("coco/zero-shot/instances_train2017_seen_2_oriorder_cat_info.json").name == "coco-zeroshot"
    assert target_making("lvis/lvis_v1_train+coco_mask.json").name == "lvis-coco"
    assert target_making("imagenet/metadata-22k/tar_files.npy").name == "imagenet-lvis"
    assert target_making("imagenet/metadata-22k/tarindex_npy").name == "imagenet-lvis"
    assert target_making("metadata/lvis_v1_clip_a+cname.npy") is None


@pytest.fixture
def coco_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path / "datasets"))
    ann = make_detection_dataset(tmp_path, num_images=1, size=32, seed=0, style="coco")
    return f"DATASETS.TRAIN=('coco:{ann}:{tmp_path / IMAGE_DIR}',)"


def test_side_files_are_checked_before_training(coco_spec, tmp_path):
    r18 = config_path("BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml")
    cfg = load_config(r18, [coco_spec])
    assert [key for key, _, _ in side_files(cfg)] == ["MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH"]
    with pytest.raises(DeticError) as info:
        check_datasets(cfg)
    expected = tmp_path / "datasets" / "metadata" / "lvis_v1_train_cat_info.json"
    assert str(info.value) == (f"MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH: {expected} not found (run `detic data prepare "
                               "lvis-norare` to make it; DETIC_DATASETS sets the datasets root)")
    check_datasets(load_config(r18, [coco_spec, "MODEL.ROI_BOX_HEAD.USE_FED_LOSS=False"]))  # nothing else needed

    tar = load_config(r18, [coco_spec, "MODEL.ROI_BOX_HEAD.USE_FED_LOSS=False", "DATALOADER.USE_TAR_DATASET=True"])
    with pytest.raises(DeticError, match=r"DATALOADER.TARFILE_PATH: .*/imagenet/metadata-22k/tar_files.npy not found "
                                         r"\(run `detic data prepare imagenet-lvis` to make it from the ImageNet-21K "
                                         r"tar files, or set DATALOADER.USE_TAR_DATASET=False for class folders;"):
        check_datasets(tar)
    own = load_config(r18, [coco_spec, f"MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH={tmp_path}/freq.json"])
    with pytest.raises(DeticError, match="freq.json not found \\(set the key to the file;"):
        check_datasets(own)


def test_21k_vocabulary_names_the_commands_that_make_it(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path / "datasets"))
    code, _, err = run_cli("train", "--row", "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size", "--device", "cpu",
                           "--output-dir", tmp_path / "out")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1, err
    root = tmp_path / "datasets"
    assert (f"make it with `detic data prepare imagenet-lvis`, then `detic build-vocab --ann {root}/imagenet/"
            f"annotations/imagenet-22k_image_info_lvis-22k.json --out {root}/metadata/lvis-21k_clip_a+cname.npy`"
            ) in errors[0]


def test_progress_line():
    step = StepInfo(iteration=20, stop_iter=90000, total_loss=1.23456, lr=2e-4, it_per_s=1.5, eta_seconds=3725.0)
    assert progress_line(step) == "iteration 20/90000  loss 1.235  lr 0.0002  1.50 it/s  ETA 1:02:05"


def test_caption_models_get_the_pretrained_text_tower(parity_clip):
    """A caption model whose init has no text_encoder.* keys gets CLIP's tower; one that has them keeps them."""
    import torch
    from torch import nn

    from detic_cli.clip.encoder import load_text_encoder
    from detic_cli.engine.train_inputs import fill_text_encoder
    from detic_cli.modeling.text.text_encoder import TextEncoder

    model = nn.Module()
    model.text_encoder = TextEncoder()
    note = fill_text_encoder(model, ["text_encoder.ln_final.weight"], str(parity_clip))
    assert note is not None and str(parity_clip) in note
    expected = load_text_encoder(parity_clip).state_dict()
    for key, value in model.text_encoder.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert fill_text_encoder(model, ["backbone.x"], str(parity_clip)) is None
    assert fill_text_encoder(nn.Module(), None, str(parity_clip)) is None


def test_wrong_clip_file_is_one_line(parity_clip):
    from torch import nn

    from detic_cli.engine.train_inputs import fill_text_encoder
    from detic_cli.errors import DeticError
    from detic_cli.modeling.text.text_encoder import TextEncoder

    model = nn.Module()
    model.text_encoder = TextEncoder(embed_dim=64, width=64, heads=2, layers=1)
    with pytest.raises(DeticError, match="not a CLIP ViT-B/32 text tower"):
        fill_text_encoder(model, None, str(parity_clip))


def test_detr_federated_loss_needs_the_frequency_file(coco_spec):
    detr = config_path("BoxSup-DeformDETR_L_R50_4x.yaml")
    cfg = load_config(detr, [coco_spec])
    assert cfg.MODEL.DETR.USE_FED_LOSS
    assert [key for key, _, _ in side_files(cfg)] == ["MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH"]
    with pytest.raises(DeticError, match="detic data prepare lvis-norare"):
        check_datasets(cfg)
    assert side_files(load_config(detr, [coco_spec, "MODEL.DETR.USE_FED_LOSS=False"])) == []
