"""Parsing and checking class names."""

from __future__ import annotations

import json

import pytest

from detic_cli.errors import DeticError
from detic_cli.vocab.names import (
    drop_duplicates,
    duplicate_names,
    fix_space,
    read_ann_categories,
    read_names_file,
    split_names,
    warn_duplicates,
)


def test_split_strips_and_warns_on_empty(capsys):
    assert split_names(" cat , dog,,  ,traffic light ") == ["cat", "dog", "traffic light"]
    assert "ignored 2 empty name(s)" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["", "   ", ",", ",,, ,"])
def test_split_without_names_is_an_error(text):
    with pytest.raises(DeticError, match="no class names"):
        split_names(text)


def test_duplicates_case_insensitive_dropped_with_warning(capsys):
    assert drop_duplicates(["Cat", "dog", "cat", "DOG ", "bird"]) == ["Cat", "dog", "bird"]
    err = capsys.readouterr().err
    assert "dropped 2 duplicate" in err and "'cat'" in err


def test_duplicates_kept_when_rows_must_follow_lines(capsys):
    assert duplicate_names(["Apple", "apple"]) == ["apple"]
    warn_duplicates(["Apple", "apple"], "--names-file x.txt")
    assert "kept" in capsys.readouterr().err


def test_warning_shows_brackets_literally(capsys):
    drop_duplicates(["bow [weapon]", "Bow [weapon]"])
    assert "[weapon]" in capsys.readouterr().err


def test_names_file_utf8_bom_blank_lines(tmp_path, capsys):
    f = tmp_path / "names.txt"
    f.write_bytes("\ufeffcat\n\n 猫 \ndog\n\n".encode())
    assert read_names_file(f) == ["cat", "猫", "dog"]
    assert "skipped 1 blank line" in capsys.readouterr().err


def test_names_file_trailing_newlines_are_silent(tmp_path, capsys):
    f = tmp_path / "names.txt"
    f.write_text("cat\ndog, big\n\n", encoding="utf-8")
    assert read_names_file(f) == ["cat", "dog, big"]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("content", "message"), [(b"", "no class names"), (b"\xff\xfecat", "not UTF-8")])
def test_names_file_errors(tmp_path, content, message):
    f = tmp_path / "names.txt"
    f.write_bytes(content)
    with pytest.raises(DeticError, match=message):
        read_names_file(f)
    with pytest.raises(DeticError, match="file not found"):
        read_names_file(tmp_path / "missing.txt")


def test_fix_space():
    assert fix_space(["aerosol_can", "a_b_c", "plain"]) == ["aerosol can", "a b c", "plain"]


def test_ann_sorted_by_id_with_synonyms(tmp_path):
    f = tmp_path / "lvis.json"
    cats = [{"id": 3, "name": "c", "synonyms": ["c", "cc"]}, {"id": 1, "name": "a", "synonyms": ["a"]}]
    f.write_text(json.dumps({"categories": cats}))
    assert read_ann_categories(f) == (["a", "c"], [["a"], ["c", "cc"]])


def test_ann_coco_has_no_synonyms(tmp_path):
    f = tmp_path / "coco.json"
    f.write_text(json.dumps({"categories": [{"id": 2, "name": "bicycle"}, {"id": 1, "name": "person"}]}))
    assert read_ann_categories(f) == (["person", "bicycle"], None)


@pytest.mark.parametrize(("content", "message"), [
    ("{", "not valid"), ('{"images": []}', "no 'categories'"), ('{"categories": [{"id": 1}]}', "'id' and a 'name'"),
])
def test_ann_errors(tmp_path, content, message):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(DeticError, match=message):
        read_ann_categories(f)
