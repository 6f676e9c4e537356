"""Every `detic data prepare` target by name, in the order `detic data status` lists them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import ModuleType

from detic_cli.data.prepare import (
    cc3m_tags,
    coco_captions,
    coco_zeroshot,
    imagenet_lvis,
    lvis_coco,
    lvis_norare,
    objects365_names,
    oid_val,
)
from detic_cli.data.prepare.base import PrepareFn, Target
from detic_cli.data.prepare.imagenet_scan import TAR_INDEX_DIR, TAR_LIST
from detic_cli.errors import DeticError

_MODULES: tuple[ModuleType, ...] = (lvis_norare, lvis_coco, imagenet_lvis, cc3m_tags, coco_zeroshot, coco_captions,
                                    objects365_names, oid_val)


@dataclass(frozen=True)
class Entry:
    """A target's description and the function that makes it: `prepare(root, *, force, progress)`."""

    target: Target
    prepare: PrepareFn


TARGETS: dict[str, Entry] = {m.TARGET.name: Entry(m.TARGET, m.prepare) for m in _MODULES}


def target_names() -> list[str]:
    return list(TARGETS)


def find_target(name: str) -> Entry:
    """The target called `name`; an unknown name is a DeticError suggesting the closest ones."""
    entry = TARGETS.get(name.strip().lower())
    if entry is None:
        close = difflib.get_close_matches(name.lower(), list(TARGETS), n=2, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise DeticError(f"unknown dataset target {name!r}: {hint}choose one of {', '.join(TARGETS)}")
    return entry


def target_making(relative: str) -> Target | None:
    """The target that writes `relative` (a path under the datasets root, e.g. `metadata/lvis_v1_train_cat_info.json`),
    None when no target does. `imagenet-lvis` also writes the tar list and indexes when it reads ImageNet tars."""
    text = relative.replace("\\", "/").strip("/")
    for entry in TARGETS.values():
        if text in entry.target.outputs:
            return entry.target
    if text == TAR_LIST or text == TAR_INDEX_DIR or text.startswith(TAR_INDEX_DIR + "/"):
        return TARGETS["imagenet-lvis"].target
    return None
