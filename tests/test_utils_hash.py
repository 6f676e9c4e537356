"""`remembered_sha256`: a file is hashed once per (path, size, mtime), the digest kept under DETIC_HOME."""

from __future__ import annotations

import hashlib
import os

from detic_cli.utils import detic_home, remembered_sha256


def test_a_file_is_hashed_once_per_path_size_and_mtime(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert remembered_sha256(f) == digest
    assert digest in (detic_home() / "vocab" / "file-hashes.json").read_text()
    f.write_bytes(b"other!!")
    os.utime(f, ns=(1, 1))
    assert remembered_sha256(f) == hashlib.sha256(b"other!!").hexdigest()
