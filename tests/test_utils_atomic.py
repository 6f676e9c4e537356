"""atomic_path: the one way files are written (temporary name beside the target, then a rename)."""

from __future__ import annotations

import stat

import pytest

from detic_cli.utils import atomic_path, atomic_write_bytes


def test_a_finished_write_replaces_the_file_readable_by_everyone(tmp_path):
    target = tmp_path / "deep" / "out.bin"
    atomic_write_bytes(target, b"old")
    with atomic_path(target, fsync=True) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # readers see the old file until the rename
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
