"""Prompt templates of the original `tools/dump_clip_features.py`, plus user templates with `{}`."""

from __future__ import annotations

from detic_cli.errors import DeticError

PROMPTS: dict[str, str] = {
    "a": "a {}",  # "a " + name: how the released lvis/o365/oid/coco embeddings were made
    "none": "{}",
    "photo": "a photo of a {}",
    "scene": "a photo of a {} in the scene",
}
DEFAULT_PROMPT = "a"


def prompt_template(prompt: str) -> str:
    """`a|none|photo|scene` or a template containing `{}` -> the template (every `{}` takes the name)."""
    if prompt in PROMPTS:
        return PROMPTS[prompt]
    if "{}" not in prompt:
        raise DeticError(f"--prompt {prompt!r}: expected a, none, photo, scene or a template with {{}} "
                         "such as \"a photo of a {}\"")
    return prompt


def apply_prompt(template: str, names: list[str]) -> list[str]:
    """Sentences to encode, one per name (plain substitution: braces inside names are kept)."""
    return [template.replace("{}", name) for name in names]
