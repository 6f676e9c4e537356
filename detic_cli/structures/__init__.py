from detic_cli.structures.boxes import Boxes, pairwise_iou
from detic_cli.structures.image_list import ImageList
from detic_cli.structures.instances import Instances

__all__ = ["Boxes", "ImageList", "Instances", "pairwise_iou"]
