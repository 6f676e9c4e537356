"""CLIP's BPE merge list is read here (not in modeling) and turned into the tokenizer."""

from __future__ import annotations

import gzip

from detic_cli.clip.bpe import NUM_MERGES, clip_tokenizer, default_bpe_path, read_bpe_merges
from detic_cli.modeling.text.tokenizer import ClipTokenizer


def test_reads_the_merges_after_the_header(tmp_path):
    path = tmp_path / "bpe.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("#version: 0.2\nc a\nca t</w>\n")
    merges = read_bpe_merges(path)
    assert merges == [("c", "a"), ("ca", "t</w>")]
    assert ClipTokenizer(merges).encode("cat") == [513]


def test_open_clip_file_gives_clip_vocabulary():
    merges = read_bpe_merges()
    assert default_bpe_path().name == "bpe_simple_vocab_16e6.txt.gz"
    assert len(merges) == NUM_MERGES == 48894 and merges[0] == ("i", "n")
    tok = clip_tokenizer()
    assert tok is clip_tokenizer() and (tok.sot_id, tok.eot_id) == (49406, 49407)
