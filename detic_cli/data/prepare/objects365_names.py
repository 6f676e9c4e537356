"""`objects365-names`: the Objects365 v2 validation json with the original's category-name fixes
(original `tools/fix_o365_names.py`, names from `Objects365_names_fix.csv`), dataset
`objects365_v2_val` (`objects365/annotations/zhiyuan_objv2_val_fixname.json`).

Each category's name must equal the file's official name (ignoring surrounding spaces), otherwise
the input is not the Objects365 v2 file the fixes were made for; names whose fixed form differs
are replaced. Images and annotations are unchanged.
"""

from __future__ import annotations

from pathlib import Path

from detic_cli.data.prepare import metadata
from detic_cli.data.prepare.base import Progress, Target, begin, output_paths
from detic_cli.data.prepare.jsonio import read_dataset_json, write_json
from detic_cli.errors import DeticError

VAL = "objects365/annotations/zhiyuan_objv2_val.json"
FIXED = "objects365/annotations/zhiyuan_objv2_val_fixname.json"

TARGET = Target(
    name="objects365-names",
    summary="Objects365 v2 validation annotations with the original's class-name typo fixes",
    inputs=((VAL,),),
    outputs=(FIXED,),
    source_hint="download Objects365 v2 (objects365.org): zhiyuan_objv2_val.json to objects365/annotations/, "
                "images to objects365/val/",
    downloads=("Objects365_names_fix.csv",),
)


def fix_names(categories: list[dict], fixes: dict[int, tuple[str, str]], source: str) -> tuple[list[dict], int]:
    """(categories with fixed names, number renamed)."""
    out, renamed = [], 0
    for cat in categories:
        if cat["id"] not in fixes:
            raise DeticError(f"{source}: category id {cat['id']} is not an Objects365 v2 category")
        official, fixed = fixes[cat["id"]]
        if official.strip() != str(cat["name"]).strip():
            raise DeticError(f"{source}: category {cat['id']} is {cat['name']!r}, expected {official!r}; "
                             "is this the Objects365 v2 annotation file?")
        if official != fixed:
            cat = {**cat, "name": fixed}
            renamed += 1
        out.append(cat)
    return out, renamed


def prepare(root: Path, *, force: bool, progress: Progress) -> list[Path]:
    outputs = output_paths(TARGET, root)
    if not begin(TARGET, root, force=force, progress=progress):
        return outputs
    progress.note(f"objects365-names: reading {root / VAL}")
    data = read_dataset_json(root / VAL)
    data["categories"], renamed = fix_names(data["categories"], metadata.objects365_name_fixes(), str(root / VAL))
    write_json(outputs[0], data)
    progress.note(f"objects365-names: {renamed} category names fixed")
    return outputs
