"""The original Detic model zoo as frozen records: 26 rows in 5 sections over 22 weight files, the
third-party backbones the configs start from, and the unpublished stages some rows fine-tune from.

Facts come from the original `docs/MODEL_ZOO.md` (training time on 8 V100s, metrics in percent,
run time in ms on a Titan RTX) and its configs. Rows that share a weight URL hold the same `Asset`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from detic_cli.zoo.assets import Asset

DETIC_URL = "https://dl.fbaipublicfiles.com/detic/"
DEFAULT_MODEL = "Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size"
SECTIONS = {
    "ov-lvis": "Open-vocabulary LVIS",
    "lvis": "Standard LVIS",
    "ov-coco": "Open-vocabulary COCO",
    "cross-dataset": "Cross-dataset evaluation",
    "real-time": "Real-time models",
}


@dataclass(frozen=True)
class Metrics:
    """One row's numbers (percent; None where its table has no such column). mask_ap/_novel/_rare:
    LVIS mask mAP (all, novel = rare classes unseen in training, rare); box_ap/_rare: LVIS box mAP;
    box_ap50/_novel: OV-COCO generalized box mAP50 (all, novel); o365_box_ap: Objects365 box mAP;
    oid_box_ap50: OpenImages box mAP50; lvis_box_ap: LVIS box mAP of the real-time table;
    run_time_ms: milliseconds per image on a Titan RTX."""

    mask_ap: float | None = None
    mask_ap_novel: float | None = None
    mask_ap_rare: float | None = None
    box_ap: float | None = None
    box_ap_rare: float | None = None
    box_ap50: float | None = None
    box_ap50_novel: float | None = None
    o365_box_ap: float | None = None
    oid_box_ap50: float | None = None
    lvis_box_ap: float | None = None
    run_time_ms: float | None = None

    def as_dict(self) -> dict[str, float]:
        """Only the columns this row has."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class ZooRow:
    """One row of the zoo tables.

    name: unique id, `<section>/<title>`; title: the row's name in its table; section: a SECTIONS key.
    config: file name of its config, the same under the project's `configs/` and the original's.
    weights: the released checkpoint; training_time: hours on 8 V100s as printed ("17h"), None if
    not given; init: name of the backbone, row weights or unpublished stage it fine-tunes from.
    eval_overrides: KEY=VALUE words the table's numbers were measured with on top of the config.
    vocab: the built-in vocabulary to detect with by default.
    """

    name: str
    title: str
    section: str
    config: str
    weights: Asset
    training_time: str | None
    metrics: Metrics
    init: str
    eval_overrides: tuple[str, ...] = ()
    vocab: str = "lvis"

    @property
    def stem(self) -> str:
        """The config/checkpoint stem, e.g. `BoxSup-C2_L_CLIP_SwinB_896b32_4x`."""
        return self.config.removesuffix(".yaml")

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.update(url=self.weights.url, filename=self.weights.filename, metrics=self.metrics.as_dict(),
                   eval_overrides=list(self.eval_overrides))
        del out["weights"]
        return out


@dataclass(frozen=True)
class Backbone:
    """A third-party pretrained backbone that configs start from. original_weights: how the
    original config names it (MODEL.WEIGHTS, or `timm:NAME` for MODEL.TIMM.PRETRAINED);
    needs_conversion: the original converted it to detectron2 keys first (`detic convert-pretrained`)."""

    name: str
    title: str
    weights: Asset
    original_weights: str
    needs_conversion: bool

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.update(section="backbones", url=self.weights.url, filename=self.weights.filename)
        del out["weights"]
        return out


@dataclass(frozen=True)
class Stage:
    """A training stage whose weights were never published but which a row fine-tunes from:
    name (= its config stem), config file name, and its own init."""

    name: str
    config: str
    init: str


_FILES: dict[str, Asset] = {}


def _detic(stem: str) -> Asset:
    """The released checkpoint `stem`, one object per file however many rows use it."""
    return _FILES.setdefault(stem, Asset(filename=f"{stem}.pth", url=f"{DETIC_URL}{stem}.pth"))


_CROSS = (
    'DATASETS.TEST=("oid_val_expanded","objects365_v2_val")', "MODEL.RESET_CLS_TESTS=True",
    'MODEL.TEST_CLASSIFIERS=("datasets/metadata/oid_clip_a+cname.npy","datasets/metadata/o365_clip_a+cnamefix.npy")',
    "MODEL.TEST_NUM_CLASSES=(500,365)", "MODEL.MASK_ON=False",
)
_RT_LVIS = (
    'DATASETS.TEST=("lvis_v1_val",)', "MODEL.RESET_CLS_TESTS=True",
    'MODEL.TEST_CLASSIFIERS=("datasets/metadata/lvis_v1_clip_a+cname.npy",)', "MODEL.TEST_NUM_CLASSES=(1203,)",
    "MODEL.MASK_ON=False",
)
_RT_640 = _RT_LVIS + ("INPUT.MIN_SIZE_TEST=640", "INPUT.MAX_SIZE_TEST=640", "MODEL.ROI_HEADS.SCORE_THRESH_TEST=0.3")

BACKBONES: tuple[Backbone, ...] = (
    Backbone("resnet50_miil_21k", "ResNet-50 ImageNet-21K (MIIL)", Asset(
        "resnet50_miil_21k.pth",
        "https://miil-public-eu.oss-eu-central-1.aliyuncs.com/model-zoo/ImageNet_21K_P/models/resnet50_miil_21k.pth",
    ), "models/resnet50_miil_21k.pkl", True),
    Backbone("swin_base_patch4_window7_224_22k", "Swin-B ImageNet-22K", Asset(
        "swin_base_patch4_window7_224_22k.pth",
        "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224_22k.pth",
    ), "models/swin_base_patch4_window7_224_22k.pkl", True),
    Backbone("convnext_tiny_22k_224", "ConvNeXt-T ImageNet-22K", Asset(
        "convnext_tiny_22k_224.pth", "https://dl.fbaipublicfiles.com/convnext/convnext_tiny_22k_224.pth",
    ), "timm:convnext_tiny_21k", False),
    Backbone("resnet18", "ResNet-18 ImageNet-1K (torchvision, through timm)", Asset(
        "resnet18-5c106cde.pth", "https://download.pytorch.org/models/resnet18-5c106cde.pth",
    ), "timm:resnet18", False),
    Backbone("R-50_MSRA", "ResNet-50 ImageNet-1K (MSRA, detectron2)", Asset(
        "R-50_MSRA.pkl", "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl",
    ), "detectron2://ImageNetPretrained/MSRA/R-50.pkl", False),
    Backbone("R-50_torchvision", "ResNet-50 ImageNet-1K (torchvision, detectron2)", Asset(
        "R-50_torchvision.pkl", "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/torchvision/R-50.pkl",
    ), "detectron2://ImageNetPretrained/torchvision/R-50.pkl", False),
)

STAGES: tuple[Stage, ...] = (
    Stage("BoxSup-C2_LCOCO_CLIP_CXT21k_640b32_4x", "BoxSup-C2_LCOCO_CLIP_CXT21k_640b32_4x.yaml",
          "convnext_tiny_22k_224"),
    Stage("BoxSup-C2_LCOCO_CLIP_R5021k_640b64_4x", "BoxSup-C2_LCOCO_CLIP_R5021k_640b64_4x.yaml",
          "resnet50_miil_21k"),
    Stage("BoxSup-C2_LCOCO_CLIP_R18_640b32_4x", "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml", "resnet18"),
)


def _row(section: str, title: str, stem: str, hours: str | None, metrics: Metrics, init: str,
         evals: tuple[str, ...] = (), name: str | None = None) -> ZooRow:
    vocab = "coco" if section == "ov-coco" else "lvis"
    return ZooRow(f"{section}/{name or title}", title, section, f"{stem}.yaml", _detic(stem), hours,
                  metrics, init, evals, vocab)


_M, _SW = Metrics, "swin_base_patch4_window7_224_22k"
_BS_LB_R50, _BS_L_SWIN = "BoxSup-C2_Lbase_CLIP_R5021k_640b64_4x", "BoxSup-C2_L_CLIP_SwinB_896b32_4x"
_LCOCO_SWIN = "Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size"
_OVC = "BoxSup_OVCOCO_CLIP_R50_1x"
_RT_TITLE = "Detic_C2_SwinB_896_4x_IN-21K+COCO"

ROWS: tuple[ZooRow, ...] = (
    _row("ov-lvis", "Box-Supervised_C2_R50_640_4x", _BS_LB_R50, "17h", _M(mask_ap=30.2, mask_ap_novel=16.4),
         "resnet50_miil_21k"),
    _row("ov-lvis", "Detic_C2_IN-L_R50_640_4x", "Detic_LbaseI_CLIP_R5021k_640b64_4x_ft4x_max-size", "22h",
         _M(mask_ap=32.4, mask_ap_novel=24.9), _BS_LB_R50),
    _row("ov-lvis", "Detic_C2_CCimg_R50_640_4x", "Detic_LbaseCCimg_CLIP_R5021k_640b64_4x_ft4x_max-size", "22h",
         _M(mask_ap=31.0, mask_ap_novel=19.8), _BS_LB_R50),
    _row("ov-lvis", "Detic_C2_CCcapimg_R50_640_4x", "Detic_LbaseCCcapimg_CLIP_R5021k_640b64_4x_ft4x_max-size",
         "22h", _M(mask_ap=31.0, mask_ap_novel=21.3), _BS_LB_R50),
    _row("ov-lvis", "Box-Supervised_C2_SwinB_896_4x", "BoxSup-C2_Lbase_CLIP_SwinB_896b32_4x", "43h",
         _M(mask_ap=38.4, mask_ap_novel=21.9), _SW),
    _row("ov-lvis", "Detic_C2_IN-L_SwinB_896_4x", "Detic_LbaseI_CLIP_SwinB_896b32_4x_ft4x_max-size", "47h",
         _M(mask_ap=40.7, mask_ap_novel=33.8), "BoxSup-C2_Lbase_CLIP_SwinB_896b32_4x"),
    _row("lvis", "Box-Supervised_C2_R50_640_4x", "BoxSup-C2_L_CLIP_R5021k_640b64_4x", "17h",
         _M(mask_ap=31.5, mask_ap_rare=25.6), "resnet50_miil_21k"),
    _row("lvis", "Detic_C2_R50_640_4x", "Detic_LI_CLIP_R5021k_640b64_4x_ft4x_max-size", "22h",
         _M(mask_ap=33.2, mask_ap_rare=29.7), "BoxSup-C2_L_CLIP_R5021k_640b64_4x"),
    _row("lvis", "Box-Supervised_C2_SwinB_896_4x", _BS_L_SWIN, "43h", _M(mask_ap=40.7, mask_ap_rare=35.9), _SW),
    _row("lvis", "Detic_C2_SwinB_896_4x", "Detic_LI_CLIP_SwinB_896b32_4x_ft4x_max-size", "47h",
         _M(mask_ap=41.7, mask_ap_rare=41.7), _BS_L_SWIN),
    _row("lvis", "Box-Supervised_DeformDETR_R50_4x", "BoxSup-DeformDETR_L_R50_4x", "31h",
         _M(box_ap=31.7, box_ap_rare=21.4), "R-50_torchvision"),
    _row("lvis", "Detic_DeformDETR_R50_4x", "Detic_DeformDETR_LI_R50_4x_ft4x", "47h",
         _M(box_ap=32.5, box_ap_rare=26.2), "BoxSup-DeformDETR_L_R50_4x"),
    _row("ov-coco", "BoxSup_CLIP_R50_1x", _OVC, "12h", _M(box_ap50=39.3, box_ap50_novel=1.3), "R-50_MSRA"),
    _row("ov-coco", "Detic_CLIP_R50_1x_image", "Detic_OVCOCO_CLIP_R50_1x_max-size", "13h",
         _M(box_ap50=44.7, box_ap50_novel=24.1), _OVC),
    _row("ov-coco", "Detic_CLIP_R50_1x_caption", "Detic_OVCOCO_CLIP_R50_1x_caption", "16h",
         _M(box_ap50=43.8, box_ap50_novel=21.0), _OVC),
    _row("ov-coco", "Detic_CLIP_R50_1x_caption-image", "Detic_OVCOCO_CLIP_R50_1x_max-size_caption", "16h",
         _M(box_ap50=45.0, box_ap50_novel=27.8), _OVC),
    _row("cross-dataset", "Box-Supervised_C2_SwinB_896_4x", _BS_L_SWIN, "43h",
         _M(o365_box_ap=19.1, oid_box_ap50=46.2), _SW, _CROSS),
    _row("cross-dataset", "Detic_C2_SwinB_896_4x", "Detic_LI_CLIP_SwinB_896b32_4x_ft4x_max-size", "47h",
         _M(o365_box_ap=21.2, oid_box_ap50=53.0), _BS_L_SWIN, _CROSS),
    _row("cross-dataset", "Detic_C2_SwinB_896_4x_IN-21K", "Detic_LI21k_CLIP_SwinB_896b32_4x_ft4x_max-size", "47h",
         _M(o365_box_ap=21.4, oid_box_ap50=55.2), _BS_L_SWIN, _CROSS),
    _row("cross-dataset", "Box-Supervised_C2_SwinB_896_4x+COCO", "BoxSup-C2_LCOCO_CLIP_SwinB_896b32_4x", "43h",
         _M(o365_box_ap=19.7, oid_box_ap50=46.4), _SW, _CROSS),
    _row("cross-dataset", _RT_TITLE, _LCOCO_SWIN, "47h", _M(o365_box_ap=21.6, oid_box_ap50=54.6),
         "BoxSup-C2_LCOCO_CLIP_SwinB_896b32_4x", _CROSS),
    _row("real-time", f"{_RT_TITLE} (800x1333, no threshold)", _LCOCO_SWIN, "47h",
         _M(run_time_ms=115, lvis_box_ap=44.4), "BoxSup-C2_LCOCO_CLIP_SwinB_896b32_4x", _RT_LVIS,
         name=f"{_RT_TITLE}_800x1333"),
    _row("real-time", _RT_TITLE, _LCOCO_SWIN, "47h", _M(run_time_ms=46, lvis_box_ap=35.0),
         "BoxSup-C2_LCOCO_CLIP_SwinB_896b32_4x", _RT_640),
    _row("real-time", "Detic_C2_ConvNeXtT_896_4x_IN-21K+COCO", "Detic_LCOCOI21k_CLIP_CXT21k_640b32_4x_ft4x_max-size",
         None, _M(run_time_ms=26, lvis_box_ap=30.7), "BoxSup-C2_LCOCO_CLIP_CXT21k_640b32_4x", _RT_640),
    _row("real-time", "Detic_C2_R5021k_896_4x_IN-21K+COCO", "Detic_LCOCOI21k_CLIP_R5021k_640b32_4x_ft4x_max-size",
         None, _M(run_time_ms=23, lvis_box_ap=29.0), "BoxSup-C2_LCOCO_CLIP_R5021k_640b64_4x", _RT_640),
    _row("real-time", "Detic_C2_R18_896_4x_IN-21K+COCO", "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size",
         None, _M(run_time_ms=18, lvis_box_ap=22.1), "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x", _RT_640),
)


def weight_files() -> dict[str, Asset]:
    """The distinct released checkpoints, by stem, in table order (22 files for 26 rows)."""
    out: dict[str, Asset] = {}
    for row in ROWS:
        out.setdefault(row.stem, row.weights)
    return out


def rows_for(stem: str) -> list[ZooRow]:
    """Every row evaluating the checkpoint `stem`."""
    return [row for row in ROWS if row.stem == stem]
