"""`detic train` with weak supervision end to end: the R18 Detic config (dynamic classifier, max-size image
labels) on a synthetic box dataset plus a synthetic image-labelled dataset, both as `lvis:ANN:IMAGES` specs."""

from __future__ import annotations

import json

import numpy as np
import torch

from detic_cli.data.synthetic import make_detection_dataset, make_image_label_dataset

CONFIG = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"
SMALL = ["MODEL.WEIGHTS=", "MODEL.TIMM.PRETRAINED=False", "MODEL.ROI_HEADS.NUM_CLASSES=5", "MODEL.NUM_SAMPLE_CATS=3",
         "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH=datasets/metadata/shapes_clip.npy",
         "MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH=datasets/metadata/shapes_cat_info.json",
         "DATALOADER.USE_TAR_DATASET=False", "DATALOADER.NUM_WORKERS=0", "DATALOADER.DATASET_BS=[2,2]",
         "DATALOADER.DATASET_INPUT_SIZE=[96,64]", "DATALOADER.DATASET_RATIO=[1,1]", "SOLVER.IMS_PER_BATCH=2",
         "MODEL.CENTERNET.NUM_BOX_CONVS=1", "MODEL.CENTERNET.NUM_CLS_CONVS=1", "MODEL.ROI_MASK_HEAD.NUM_CONV=1",
         "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE=16", "MODEL.CENTERNET.PRE_NMS_TOPK_TRAIN=100",
         "MODEL.CENTERNET.POST_NMS_TOPK_TRAIN=32", "MODEL.ROI_BOX_HEAD.FC_DIM=64", "MODEL.FPN.OUT_CHANNELS=64",
         "MODEL.ROI_MASK_HEAD.CONV_DIM=16", "SOLVER.MAX_ITER=4", "SOLVER.WARMUP_ITERS=1",
         "SOLVER.CHECKPOINT_PERIOD=100", "SEED=5"]
CENTERNET = ("loss_centernet_loc", "loss_centernet_agn_pos", "loss_centernet_agn_neg")
STAGES = range(3)


def test_box_and_image_label_datasets(run_cli, shared_dir, tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    boxes = make_detection_dataset(root / "shapes_box", num_images=4, size=96, seed=0)
    labels = make_image_label_dataset(root / "shapes_labels", num_images=4, size=96, seed=1)
    (root / "metadata").mkdir()
    np.save(root / "metadata/shapes_clip.npy", np.random.default_rng(0).standard_normal((5, 512)).astype(np.float32))
    cats = json.loads(boxes.read_text())["categories"]
    (root / "metadata/shapes_cat_info.json").write_text(json.dumps([{"id": c["id"], "image_count": c["image_count"]}
                                                                    for c in cats]))
    monkeypatch.setenv("DETIC_DATASETS", str(root))
    train = (f'DATASETS.TRAIN=("lvis:{boxes}:{boxes.parent / "images"}",'
             f'"lvis:{labels}:{labels.parent / "images"}")')
    out = tmp_path / "run"
    code, _, err = run_cli("train", "--config", shared_dir / "detic-reference/configs" / CONFIG, "--device", "cpu",
                           "--log-period", "1", "--output-dir", out, train, *SMALL)
    assert code == 0, err
    lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == list(range(1, 5))
    keys = {k for k in lines[0] if k.startswith("loss_")}
    stages = {f"loss_{n}_stage{k}" for n in ("cls", "box_reg", "image") for k in STAGES}
    assert keys == {*CENTERNET, "loss_mask", *stages}
    assert all({k for k in r if k.startswith("loss_")} == keys for r in lines)  # the same keys on every batch type
    image = [r for r in lines if r["loss_image_stage0"] > 0]
    box = [r for r in lines if r["loss_image_stage0"] == 0]
    assert image and box  # DATASET_RATIO [1, 1]: both kinds of batches within four iterations (SEED 5)
    for r in image:
        assert all(r[f"loss_image_stage{k}"] > 0 and r[f"loss_cls_stage{k}"] == 0 for k in STAGES)
        assert all(r[k] == 0 for k in (*CENTERNET, "loss_mask"))
    for r in box:
        assert all(r[f"loss_cls_stage{k}"] > 0 and r[f"loss_image_stage{k}"] == 0 for k in STAGES)
        assert r["loss_centernet_loc"] > 0
    final = torch.load(out / "model_final.pth", weights_only=True)
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())
