"""Config paths that name files of the datasets tree (`datasets/...`) resolve under $DETIC_DATASETS."""

from __future__ import annotations

from pathlib import Path

from detic_cli.data.catalog import datasets_root

_PREFIX = "datasets/"


def dataset_path(p: str | Path, *, root: str | Path | None = None) -> Path:
    """`datasets/x/y` -> datasets_root(root) / "x/y"; any other path is returned as given (`~` expanded).

    The original configs write dataset-relative paths such as
    `datasets/metadata/lvis_v1_train_cat_info.json`; the datasets root is `root`, else
    $DETIC_DATASETS, else ./datasets, so the default keeps the original meaning.
    """
    text = str(p)
    if text.startswith(_PREFIX):
        return datasets_root(root) / text[len(_PREFIX):]
    return Path(text).expanduser()
