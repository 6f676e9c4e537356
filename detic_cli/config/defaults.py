"""Every configuration key the project knows, with its default and what it means.

The tree follows detectron2 + CenterNet2 + Detic, so the original YAML files load
unchanged. Keys that only matter for training are kept (configs set them) even
where inference ignores them. Sizes are pixels; strides are input pixels per
feature cell.
"""

from __future__ import annotations

import copy
from typing import Any

_MODEL: dict[str, Any] = {
    "META_ARCHITECTURE": "CustomRCNN",  # CustomRCNN (two-stage) or DeformableDetr
    "DEVICE": "cuda",
    "WEIGHTS": "",  # init / fine-tune checkpoint path or URL
    "MASK_ON": False,
    "KEYPOINT_ON": False,
    "LOAD_PROPOSALS": False,
    "PIXEL_MEAN": [103.530, 116.280, 123.675],  # in INPUT.FORMAT channel order, 0-255
    "PIXEL_STD": [1.0, 1.0, 1.0],
    "DYNAMIC_CLASSIFIER": False,  # sample NUM_SAMPLE_CATS classes per batch (22k vocab)
    "NUM_SAMPLE_CATS": 50,
    "CAP_BATCH_RATIO": 4,  # detection : caption batch ratio
    "WITH_CAPTION": False,  # caption loss on the image box
    "SYNC_CAPTION_BATCH": False,  # gather captions across GPUs
    "RESET_CLS_TESTS": False,  # evaluate with TEST_CLASSIFIERS (cross-dataset)
    "TEST_CLASSIFIERS": [],  # .npy paths, one per test dataset
    "TEST_NUM_CLASSES": [],
    "DATASET_LOSS_WEIGHT": [],
    "BACKBONE": {"NAME": "build_resnet_backbone", "FREEZE_AT": 2},
    "FPN": {
        "IN_FEATURES": [],  # backbone outputs fed to the FPN, fine to coarse
        "OUT_CHANNELS": 256,
        "NORM": "",
        "FUSE_TYPE": "sum",
    },
    "PROPOSAL_GENERATOR": {"NAME": "RPN", "MIN_SIZE": 0},
    "ANCHOR_GENERATOR": {
        "NAME": "DefaultAnchorGenerator",
        "SIZES": [[32, 64, 128, 256, 512]],
        "ASPECT_RATIOS": [[0.5, 1.0, 2.0]],
        "ANGLES": [[-90, 0, 90]],
        "OFFSET": 0.0,
    },
    "RPN": {
        "HEAD_NAME": "StandardRPNHead",
        "IN_FEATURES": ["res4"],
        "BOUNDARY_THRESH": -1,
        "IOU_THRESHOLDS": [0.3, 0.7],
        "IOU_LABELS": [0, -1, 1],
        "BATCH_SIZE_PER_IMAGE": 256,
        "POSITIVE_FRACTION": 0.5,
        "BBOX_REG_LOSS_TYPE": "smooth_l1",
        "BBOX_REG_LOSS_WEIGHT": 1.0,
        "BBOX_REG_WEIGHTS": [1.0, 1.0, 1.0, 1.0],
        "SMOOTH_L1_BETA": 0.0,
        "LOSS_WEIGHT": 1.0,
        "PRE_NMS_TOPK_TRAIN": 12000,
        "PRE_NMS_TOPK_TEST": 6000,
        "POST_NMS_TOPK_TRAIN": 2000,
        "POST_NMS_TOPK_TEST": 1000,
        "NMS_THRESH": 0.7,
        "CONV_DIMS": [-1],
    },
    "ROI_HEADS": {
        "NAME": "Res5ROIHeads",  # DeticCascadeROIHeads or CustomRes5ROIHeads
        "NUM_CLASSES": 80,
        "IN_FEATURES": ["res4"],
        "IOU_THRESHOLDS": [0.5],
        "IOU_LABELS": [0, 1],
        "BATCH_SIZE_PER_IMAGE": 512,
        "POSITIVE_FRACTION": 0.25,
        "SCORE_THRESH_TEST": 0.05,  # detections below are dropped before NMS
        "NMS_THRESH_TEST": 0.5,
        "PROPOSAL_APPEND_GT": True,
        "MASK_WEIGHT": 1.0,
        "ONE_CLASS_PER_PROPOSAL": False,  # demo: keep the best class per box only
    },
    "ROI_BOX_HEAD": {
        "NAME": "",
        "BBOX_REG_LOSS_TYPE": "smooth_l1",
        "BBOX_REG_LOSS_WEIGHT": 1.0,
        "BBOX_REG_WEIGHTS": [10.0, 10.0, 5.0, 5.0],
        "SMOOTH_L1_BETA": 0.0,
        "POOLER_RESOLUTION": 14,
        "POOLER_SAMPLING_RATIO": 0,  # 0 = adaptive (ceil(bin size))
        "POOLER_TYPE": "ROIAlignV2",
        "NUM_FC": 0,
        "FC_DIM": 1024,
        "NUM_CONV": 0,
        "CONV_DIM": 256,
        "NORM": "",
        "CLS_AGNOSTIC_BBOX_REG": False,
        "TRAIN_ON_PRED_BOXES": False,
        "FED_LOSS_FREQ_WEIGHT_POWER": 0.5,
        "FED_LOSS_NUM_CLASSES": 50,
        "USE_ZEROSHOT_CLS": False,  # classifier = fixed text embeddings
        "ZEROSHOT_WEIGHT_PATH": "datasets/metadata/lvis_v1_clip_a+cname.npy",
        "ZEROSHOT_WEIGHT_DIM": 512,
        "NORM_WEIGHT": True,  # L2-normalise region features and embeddings
        "NORM_TEMP": 50.0,  # logit temperature after normalisation
        "IGNORE_ZERO_CATS": False,  # drop classes with zero training frequency
        "USE_BIAS": 0.0,  # >= 0: no learned bias; < 0: init value of cls_bias
        "MULT_PROPOSAL_SCORE": False,  # score = sqrt(cls * proposal)
        "USE_SIGMOID_CE": False,
        "PRIOR_PROB": 0.01,
        "USE_EQL_LOSS": False,
        "EQL_FREQ_CAT": 200,
        "USE_FED_LOSS": False,
        "CAT_FREQ_PATH": "datasets/metadata/lvis_v1_train_cat_info.json",
        "FED_LOSS_NUM_CAT": 50,
        "FED_LOSS_FREQ_WEIGHT": 0.5,
        "IMAGE_LABEL_LOSS": "max_size",  # max_size, max_score, wsod, wsddn, ...
        "IMAGE_LOSS_WEIGHT": 0.1,
        "IMAGE_BOX_SIZE": 1.0,
        "ADD_IMAGE_BOX": False,
        "WS_NUM_PROPS": 128,
        "WITH_SOFTMAX_PROP": False,
        "CAPTION_WEIGHT": 1.0,
        "NEG_CAP_WEIGHT": 0.125,
        "ADD_FEATURE_TO_PROP": False,
        "SOFTMAX_WEAK_LOSS": False,
    },
    "ROI_BOX_CASCADE_HEAD": {
        "BBOX_REG_WEIGHTS": [[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0], [30.0, 30.0, 15.0, 15.0]],
        "IOUS": [0.5, 0.6, 0.7],
    },
    "ROI_MASK_HEAD": {
        "NAME": "MaskRCNNConvUpsampleHead",
        "POOLER_RESOLUTION": 14,
        "POOLER_SAMPLING_RATIO": 0,
        "NUM_CONV": 0,
        "CONV_DIM": 256,
        "NORM": "",
        "CLS_AGNOSTIC_MASK": False,
        "POOLER_TYPE": "ROIAlignV2",
    },
    "RESNETS": {
        "DEPTH": 50,
        "OUT_FEATURES": ["res4"],
        "NUM_GROUPS": 1,
        "NORM": "FrozenBN",
        "WIDTH_PER_GROUP": 64,
        "STRIDE_IN_1X1": True,  # MSRA weights stride in the 1x1 conv
        "RES5_DILATION": 1,
        "RES2_OUT_CHANNELS": 256,
        "STEM_OUT_CHANNELS": 64,
        "DEFORM_ON_PER_STAGE": [False, False, False, False],
        "DEFORM_MODULATED": False,
        "DEFORM_NUM_GROUPS": 1,
    },
    "CENTERNET": {
        "NUM_CLASSES": 80,
        "IN_FEATURES": ["p3", "p4", "p5", "p6", "p7"],
        "FPN_STRIDES": [8, 16, 32, 64, 128],
        "PRIOR_PROB": 0.01,
        "INFERENCE_TH": 0.05,  # heatmap score floor for candidates
        "CENTER_NMS": False,
        "NMS_TH_TRAIN": 0.6,
        "NMS_TH_TEST": 0.6,
        "PRE_NMS_TOPK_TRAIN": 1000,  # candidates per level
        "POST_NMS_TOPK_TRAIN": 100,  # proposals per image
        "PRE_NMS_TOPK_TEST": 1000,
        "POST_NMS_TOPK_TEST": 100,
        "NORM": "GN",
        "USE_DEFORMABLE": False,
        "NUM_CLS_CONVS": 4,
        "NUM_BOX_CONVS": 4,
        "NUM_SHARE_CONVS": 0,
        "LOC_LOSS_TYPE": "giou",
        "SIGMOID_CLAMP": 1e-4,
        "HM_MIN_OVERLAP": 0.8,
        "MIN_RADIUS": 4,
        "SOI": [[0, 80], [64, 160], [128, 320], [256, 640], [512, 10000000]],
        "POS_WEIGHT": 1.0,
        "NEG_WEIGHT": 1.0,
        "REG_WEIGHT": 2.0,
        "HM_FOCAL_BETA": 4,
        "HM_FOCAL_ALPHA": 0.25,
        "LOSS_GAMMA": 2.0,
        "WITH_AGN_HM": False,  # class-agnostic heatmap (proposal network)
        "ONLY_PROPOSAL": False,
        "AS_PROPOSAL": False,
        "IGNORE_HIGH_FP": -1.0,
        "MORE_POS": False,
        "MORE_POS_THRESH": 0.2,
        "MORE_POS_TOPK": 9,
        "NOT_NORM_REG": True,
        "NOT_NMS": False,
    },
    "BIFPN": {"NUM_LEVELS": 5, "NUM_BIFPN": 6, "NORM": "GN", "OUT_CHANNELS": 160, "SEPARABLE_CONV": False},
    "SWIN": {"SIZE": "T", "USE_CHECKPOINT": False, "OUT_FEATURES": [1, 2, 3]},
    "TIMM": {
        "BASE_NAME": "resnet50",  # resnet18, resnet50, resnet50_in21k, convnext_tiny_21k
        "OUT_LEVELS": [3, 4, 5],
        "NORM": "FrozenBN",
        "FREEZE_AT": 0,
        "PRETRAINED": False,
    },
    "DETR": {
        "NUM_CLASSES": 80,
        "FROZEN_WEIGHTS": "",
        "GIOU_WEIGHT": 2.0,
        "L1_WEIGHT": 5.0,
        "DEEP_SUPERVISION": True,
        "NO_OBJECT_WEIGHT": 0.1,
        "CLS_WEIGHT": 2.0,
        "NUM_FEATURE_LEVELS": 4,
        "TWO_STAGE": False,
        "WITH_BOX_REFINE": False,
        "FOCAL_ALPHA": 0.25,
        "NHEADS": 8,
        "DROPOUT": 0.1,
        "DIM_FEEDFORWARD": 2048,
        "ENC_LAYERS": 6,
        "DEC_LAYERS": 6,
        "PRE_NORM": False,
        "HIDDEN_DIM": 256,
        "NUM_OBJECT_QUERIES": 100,
        "USE_FED_LOSS": False,
        "WEAK_WEIGHT": 0.1,
    },
}

_DEFAULTS: dict[str, Any] = {
    "VERSION": 2,
    "MODEL": _MODEL,
    "INPUT": {
        "MIN_SIZE_TRAIN": [800],
        "MIN_SIZE_TRAIN_SAMPLING": "choice",
        "MAX_SIZE_TRAIN": 1333,
        "MIN_SIZE_TEST": 800,  # shortest edge at test time; 0 disables resizing
        "MAX_SIZE_TEST": 1333,
        "RANDOM_FLIP": "horizontal",
        "CROP": {"ENABLED": False, "TYPE": "relative_range", "SIZE": [0.9, 0.9]},
        "FORMAT": "BGR",  # channel order the model expects
        "MASK_FORMAT": "polygon",
        "CUSTOM_AUG": "",  # EfficientDetResizeCrop, ResizeShortestEdge, DETR
        "TRAIN_SIZE": 640,
        "TEST_SIZE": 640,
        "SCALE_RANGE": [0.1, 2.0],
        "TEST_INPUT_TYPE": "default",
    },
    "DATASETS": {
        "TRAIN": [],
        "PROPOSAL_FILES_TRAIN": [],
        "PRECOMPUTED_PROPOSAL_TOPK_TRAIN": 2000,
        "TEST": [],
        "PROPOSAL_FILES_TEST": [],
        "PRECOMPUTED_PROPOSAL_TOPK_TEST": 1000,
    },
    "DATALOADER": {
        "NUM_WORKERS": 4,
        "ASPECT_RATIO_GROUPING": True,
        "SAMPLER_TRAIN": "TrainingSampler",  # RepeatFactorTrainingSampler, MultiDatasetSampler
        "REPEAT_THRESHOLD": 0.0,
        "FILTER_EMPTY_ANNOTATIONS": True,
        "DATASET_RATIO": [1, 1],
        "USE_RFS": [False, False],
        "MULTI_DATASET_GROUPING": False,
        "DATASET_ANN": ["box", "box"],  # box, image, captiontag per dataset
        "USE_DIFF_BS_SIZE": False,
        "DATASET_BS": [8, 32],
        "DATASET_INPUT_SIZE": [896, 384],
        "DATASET_INPUT_SCALE": [[0.1, 2.0], [0.5, 1.5]],
        "DATASET_MIN_SIZES": [[640, 800], [320, 400]],
        "DATASET_MAX_SIZES": [1333, 667],
        "USE_TAR_DATASET": False,
        "TARFILE_PATH": "datasets/imagenet/metadata-22k/tar_files.npy",
        "TAR_INDEX_DIR": "datasets/imagenet/metadata-22k/tarindex_npy",
    },
    "SOLVER": {
        "LR_SCHEDULER_NAME": "WarmupMultiStepLR",  # or WarmupCosineLR
        "MAX_ITER": 40000,
        "BASE_LR": 0.001,
        "BASE_LR_END": 0.0,
        "MOMENTUM": 0.9,
        "NESTEROV": False,
        "WEIGHT_DECAY": 0.0001,
        "WEIGHT_DECAY_NORM": 0.0,
        "GAMMA": 0.1,
        "STEPS": [30000],
        "NUM_DECAYS": 3,
        "WARMUP_FACTOR": 0.001,
        "WARMUP_ITERS": 1000,
        "WARMUP_METHOD": "linear",
        "RESCALE_INTERVAL": False,
        "CHECKPOINT_PERIOD": 5000,
        "IMS_PER_BATCH": 16,
        "REFERENCE_WORLD_SIZE": 0,
        "BIAS_LR_FACTOR": 1.0,
        "WEIGHT_DECAY_BIAS": None,
        "CLIP_GRADIENTS": {"ENABLED": False, "CLIP_TYPE": "value", "CLIP_VALUE": 1.0, "NORM_TYPE": 2.0},
        "AMP": {"ENABLED": False},
        "USE_CUSTOM_SOLVER": False,
        "OPTIMIZER": "SGD",  # SGD or ADAMW
        "BACKBONE_MULTIPLIER": 1.0,
        "CUSTOM_MULTIPLIER": 1.0,
        "CUSTOM_MULTIPLIER_NAME": [],
        "RESET_ITER": False,
        "TRAIN_ITER": -1,
    },
    "TEST": {
        "EXPECTED_RESULTS": [],
        "EVAL_PERIOD": 0,
        "KEYPOINT_OKS_SIGMAS": [],
        "DETECTIONS_PER_IMAGE": 100,
        "AUG": {"ENABLED": False, "MIN_SIZES": [400, 500, 600, 700, 800, 900, 1000, 1100, 1200],
                "MAX_SIZE": 4000, "FLIP": True},
        "PRECISE_BN": {"ENABLED": False, "NUM_ITER": 200},
    },
    "OUTPUT_DIR": "./output",
    "SEED": -1,
    "CUDNN_BENCHMARK": False,
    "VIS_PERIOD": 0,
    "GLOBAL": {"HACK": 1.0},
    "WITH_IMAGE_LABELS": False,
    "FIND_UNUSED_PARAM": True,
    "EVAL_PRED_AR": False,
    "EVAL_PROPOSAL_AR": False,
    "EVAL_CAT_SPEC_AR": False,
    "IS_DEBUG": False,
    "QUICK_DEBUG": False,
    "FP16": False,
    "EVAL_AP_FIX": False,
    "GEN_PSEDO_LABELS": False,
    "SAVE_DEBUG_PATH": "output/save_debug/",
    "DEBUG": False,
    "SAVE_DEBUG": False,
    "SAVE_PTH": False,
    "VIS_THRESH": 0.3,
    "DEBUG_SHOW_NAME": False,
}


def default_tree() -> dict[str, Any]:
    """A fresh deep copy of the defaults (callers may mutate it)."""
    return copy.deepcopy(_DEFAULTS)
