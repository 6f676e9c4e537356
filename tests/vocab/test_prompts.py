"""Prompt templates as in the original dump_clip_features.py."""

from __future__ import annotations

import pytest

from detic_cli.errors import DeticError
from detic_cli.vocab.prompts import apply_prompt, prompt_template


@pytest.mark.parametrize(("prompt", "sentence"), [
    ("a", "a traffic_light"), ("none", "traffic_light"), ("photo", "a photo of a traffic_light"),
    ("scene", "a photo of a traffic_light in the scene"), ("itap of a {}.", "itap of a traffic_light."),
])
def test_templates(prompt, sentence):
    assert apply_prompt(prompt_template(prompt), ["traffic_light"]) == [sentence]


def test_braces_in_names_are_kept():
    assert apply_prompt("a {}", ["{odd} name"]) == ["a {odd} name"]


def test_template_needs_placeholder():
    with pytest.raises(DeticError, match="template with"):
        prompt_template("a photo of")
