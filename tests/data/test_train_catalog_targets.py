"""Every training dataset's json names the `detic data prepare` target that writes it (and only that one)."""

from __future__ import annotations

import pytest

from detic_cli.data.catalog import TRAIN_LAYOUTS, resolve_train_dataset
from detic_cli.data.prepare.registry import target_making
from detic_cli.errors import DeticError


@pytest.mark.parametrize("name", list(TRAIN_LAYOUTS))
def test_layout_names_the_target_that_writes_its_json(name):
    layout = TRAIN_LAYOUTS[name]
    target = target_making(layout.annotation)
    assert layout.prepare == (target.name if target is not None else None)
    assert layout.prepare is not None or layout.note  # the message says where the file comes from


def test_cc3m_captions_name_cc3m_tags(tmp_path):
    with pytest.raises(DeticError, match=r"cc3m/train_image_info.json not found \(run `detic data prepare cc3m-tags`"):
        resolve_train_dataset("cc3m_v1_train", root=tmp_path)
