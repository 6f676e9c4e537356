"""Metric code: LVIS (federated, fixed AP), COCO, open-vocabulary COCO, Objects365, OpenImages.

A numpy evaluator that differential tests hold equal to lvis-api and pycocotools; see
`evaluate_results` for the single entry point and `results.to_coco_results` for the input format.
"""

from detic_cli.evaluation.api import EvalKind, evaluate_results
from detic_cli.evaluation.results import dataset_category_ids, to_coco_results

__all__ = ["EvalKind", "dataset_category_ids", "evaluate_results", "to_coco_results"]
