"""One entry point for every benchmark: (kind, ground truth, COCO results) -> metrics in percent."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from detic_cli.errors import DeticError
from detic_cli.evaluation.coco_eval import evaluate_coco
from detic_cli.evaluation.groundtruth import IouType, load_json
from detic_cli.evaluation.lvis_eval import evaluate_lvis
from detic_cli.evaluation.objects365_eval import evaluate_objects365
from detic_cli.evaluation.oid_eval import evaluate_oid
from detic_cli.evaluation.ovcoco_eval import evaluate_ovcoco

EvalKind = Literal["lvis", "coco", "ovcoco", "objects365", "oid"]
BOX_ONLY: frozenset[str] = frozenset({"ovcoco", "objects365", "oid"})


def evaluate_results(
    kind: EvalKind,
    gt_json: str | Path | dict[str, Any],
    results: list[dict[str, Any]],
    iou_type: IouType = "bbox",
    *,
    fixed_ap: bool = False,
    oid_hierarchy: str | Path | dict[str, Any] | None = None,
    drop_unknown_images: bool = False,
) -> dict[str, float]:
    """Metrics of `results` (COCO result dicts) against an annotation file, in percent.

    lvis: AP, AP50, AP75, APs/m/l, APr/c/f, AR@300 (`fixed_ap`: 10k per class, no image cap);
    coco / objects365: the 12 COCO numbers; ovcoco: those plus AP50-seen / AP50-unseen;
    oid: AP50 and, with `oid_hierarchy`, AP50_expand. NaN where nothing is annotated.
    Result image ids outside the annotations are an error unless `drop_unknown_images`.
    """
    if kind not in get_args(EvalKind):
        raise DeticError(f"unknown evaluation kind {kind!r}; expected one of {', '.join(get_args(EvalKind))}")
    if iou_type not in ("bbox", "segm"):
        raise DeticError(f"iou_type must be bbox or segm, not {iou_type!r}")
    if iou_type == "segm" and kind in BOX_ONLY:
        raise DeticError(f"{kind} is evaluated on boxes only")
    data = load_json(gt_json)
    drop = {"drop_unknown_images": drop_unknown_images}
    if kind == "lvis":
        return evaluate_lvis(data, results, iou_type=iou_type, fixed_ap=fixed_ap, **drop)
    if kind == "coco":
        return evaluate_coco(data, results, iou_type=iou_type, **drop)
    if kind == "ovcoco":
        return evaluate_ovcoco(data, results, **drop)
    if kind == "objects365":
        return evaluate_objects365(data, results, **drop)
    return evaluate_oid(data, results, hierarchy=oid_hierarchy, **drop)
