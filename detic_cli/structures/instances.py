"""Per-image detection results or annotations: named fields of equal length."""

from __future__ import annotations

from typing import Any

import torch


class Instances:
    """Fields such as `pred_boxes`, `scores`, `pred_classes`, `gt_boxes` sharing a first dimension.

    `image_size` is (height, width) of the image the boxes are in.
    """

    def __init__(self, image_size: tuple[int, int], **fields: Any) -> None:
        self._image_size = (int(image_size[0]), int(image_size[1]))
        self._fields: dict[str, Any] = {}
        for name, value in fields.items():
            self.set(name, value)

    @property
    def image_size(self) -> tuple[int, int]:
        return self._image_size

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.set(name, value)

    def __getattr__(self, name: str) -> Any:
        if name == "_fields" or name not in self._fields:
            raise AttributeError(f"Instances has no field {name!r}")
        return self._fields[name]

    def set(self, name: str, value: Any) -> None:
        if self._fields and len(value) != len(self):
            raise ValueError(f"field {name} has length {len(value)}, Instances has {len(self)}")
        self._fields[name] = value

    def has(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        del self._fields[name]

    def get(self, name: str) -> Any:
        return self._fields[name]

    def get_fields(self) -> dict[str, Any]:
        return self._fields

    def to(self, device: torch.device | str) -> Instances:
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            out.set(name, value.to(device) if hasattr(value, "to") else value)
        return out

    def __getitem__(self, item) -> Instances:
        if isinstance(item, int):
            item = slice(item, item + 1) if item != -1 else slice(item, None)
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            out.set(name, value[item])
        return out

    def __len__(self) -> int:
        for value in self._fields.values():
            return len(value)
        return 0

    @staticmethod
    def cat(items: list[Instances]) -> Instances:
        first = items[0]
        out = Instances(first.image_size)
        for name, value in first._fields.items():
            values = [i.get(name) for i in items]
            if isinstance(value, torch.Tensor):
                out.set(name, torch.cat(values, dim=0))
            elif hasattr(type(value), "cat"):
                out.set(name, type(value).cat(values))
            else:
                out.set(name, [v for vs in values for v in vs])
        return out

    def __repr__(self) -> str:
        return f"Instances(num={len(self)}, image_size={self._image_size}, fields={list(self._fields)})"
