"""imagenet-lvis from per-class tars (read in place) and class folders; WordNet naming; tar reading."""

from __future__ import annotations

import gzip
import io

import numpy as np
from PIL import Image

from detic_cli.data.prepare import imagenet_lvis
from detic_cli.data.prepare.tar_reader import TarImages
from detic_cli.data.prepare.wordnet import noun_synsets
from tests.data.prepare.conftest import LVIS, add_tar, jpeg_bytes, load, wordnet_zip

LONG = "n02691156_" + "x" * 120 + ".JPEG"  # a GNU long-name member


def _raw_imagenet(root):
    base = root / "imagenet" / "ImageNet-21K"
    add_tar(base / "n02691156.tar", {
        "n02691156_1.JPEG": jpeg_bytes(32, 24),
        "n02691156_2.JPEG": gzip.compress(jpeg_bytes(20, 10)),  # gzip-wrapped, as a few 21K members are
        "notes.txt": b"not an image",
        "subdir": None,
        "n02691156_3.JPEG": b"\xff\xd8 broken",
        LONG: jpeg_bytes(16, 16),
    })
    add_tar(base / "n00004475.tar", {"n00004475_1.JPEG": jpeg_bytes(8, 8)})
    add_tar(base / "n07777777.tar", {"n07777777_1.JPEG": jpeg_bytes(8, 8)})  # synset not in the 22k list
    folder = base / "n00005787"  # an extracted 21K class folder
    folder.mkdir()
    (folder / "n00005787_1.JPEG").write_bytes(jpeg_bytes(9, 7))
    lvis = root / "imagenet" / "ImageNet-LVIS" / "n02682922"  # the original's extracted LVIS classes
    lvis.mkdir(parents=True)
    for i, (w, h) in enumerate(((40, 30), (30, 40)), start=1):
        (lvis / f"n02682922_{i}.JPEG").write_bytes(jpeg_bytes(w, h))


def test_wordnet_names_synsets_like_nltk(tmp_path):
    synsets = noun_synsets(wordnet_zip(tmp_path / "wn.zip"), [2682922, 2691156, 4475, 123])
    assert set(synsets) == {2682922, 2691156, 4475}
    assert synsets[2682922].name == "aerosol.n.02"  # second sense of its first lemma
    assert synsets[2691156].name == "airplane.n.01"
    assert synsets[2682922].lemmas == ("aerosol", "aerosol_container", "aerosol_can", "spray_can")
    assert synsets[4475].definition == "a organism gloss; more text"  # quoted examples dropped


def test_imagenet_lvis_from_tars_and_folders(root, mirror, progress):
    _raw_imagenet(root)
    lvis_path, full_path = imagenet_lvis.prepare(root, force=False, progress=progress)
    lvis, full = load(lvis_path), load(full_path)
    assert lvis_path == root / "imagenet/annotations/imagenet_lvis_image_info.json"
    assert full_path == root / "imagenet/annotations/imagenet-22k_image_info_lvis-22k.json"
    # LVIS file: the aerosol folder images, then the readable airplane tar members
    assert [(im["pos_category_ids"], im.get("file_name"), im.get("tar_index"), im["height"], im["width"])
            for im in lvis["images"]] == [
        ([LVIS["aerosol_can"]], "n02682922/n02682922_1.JPEG", None, 30, 40),
        ([LVIS["aerosol_can"]], "n02682922/n02682922_2.JPEG", None, 40, 30),
        ([LVIS["airplane"]], None, 1, 24, 32), ([LVIS["airplane"]], None, 2, 10, 20),
        ([LVIS["airplane"]], None, 4, 16, 16)]
    assert [im["id"] for im in lvis["images"]] == [1, 2, 3, 4, 5] and lvis["annotations"] == []
    counts = {c["id"]: c["image_count"] for c in lvis["categories"]}
    assert len(counts) == 1203 and counts[LVIS["aerosol_can"]] == 2 and counts[LVIS["airplane"]] == 3
    assert sum(counts.values()) == 5
    # full file: every labelled class, the combined category list
    assert len(full["categories"]) == 1206 and full["categories"][1203]["synset"] == "organism.n.01"
    labels = [im["pos_category_ids"][0] for im in full["images"]]
    assert labels == [1204, 1205, LVIS["aerosol_can"], LVIS["aerosol_can"]] + [LVIS["airplane"]] * 3
    assert full["images"][1]["file_name"] == "../ImageNet-21K/n00005787/n00005787_1.JPEG"
    assert full["images"][0]["tar_index"] == 0
    assert (root / "imagenet/ImageNet-LVIS" / full["images"][1]["file_name"]).is_file()


def test_tar_images_are_readable_by_index(root, mirror, progress, monkeypatch):
    _raw_imagenet(root)
    _, full_path = imagenet_lvis.prepare(root, force=False, progress=progress)
    monkeypatch.setenv("DETIC_DATASETS", str(root))
    meta = root / "imagenet" / "metadata-22k"
    listed = [str(p) for p in np.load(meta / "tar_files.npy")]
    assert listed == ["datasets/imagenet/ImageNet-21K/n00004475.tar", "datasets/imagenet/ImageNet-21K/n02691156.tar"]
    assert [str(n) for n in np.load(meta / "tarindex_npy" / "n02691156_names.npy")] == [
        "n02691156_1.JPEG", "n02691156_2.JPEG", "n02691156_3.JPEG", LONG]
    records = [im for im in load(full_path)["images"] if "tar_index" in im]
    for spans in (True, False):  # exact spans, then the original header-block offsets only
        if not spans:
            for f in (meta / "tarindex_npy").glob("*_spans.npy"):
                f.unlink()
        reader = TarImages(meta / "tar_files.npy", meta / "tarindex_npy")
        assert len(reader) == 5
        for im in records:
            with Image.open(io.BytesIO(reader.read(im["tar_index"]))) as img:
                img.load()
                assert img.size == (im["width"], im["height"])
    assert reader.locate(4) == (root / "imagenet/ImageNet-21K/n02691156.tar", LONG)


def test_imagenet_is_idempotent_and_force_remakes(root, mirror, progress):
    _raw_imagenet(root)
    paths = imagenet_lvis.prepare(root, force=False, progress=progress)
    stamps = [p.stat().st_mtime_ns for p in paths]
    (root / "imagenet" / "ImageNet-21K" / "n00004475.tar").unlink()
    assert imagenet_lvis.prepare(root, force=False, progress=progress) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    imagenet_lvis.prepare(root, force=True, progress=progress)
    assert [im["pos_category_ids"][0] for im in load(paths[1])["images"]][0] == 1205


def test_training_loader_reads_every_prepared_image(root, mirror, progress, monkeypatch):
    from detic_cli.data.catalog import resolve_train_dataset
    from detic_cli.data.datasets import load_dataset
    from detic_cli.data.mapper import TrainMapper
    from detic_cli.data.tar_images import TarImageDecoder

    _raw_imagenet(root)
    imagenet_lvis.prepare(root, force=False, progress=progress)
    monkeypatch.setenv("DETIC_DATASETS", str(root))
    meta = root / "imagenet" / "metadata-22k"
    decoder = TarImageDecoder(meta / "tar_files.npy", meta / "tarindex_npy")
    mapper = TrainMapper(augmentations=[[]], image_format="BGR", ann_types=["image"], with_masks=False,
                         read_tar_image=decoder)
    for name, count, classes in (("imagenet_lvis_v1", 5, 1203), ("imagenet_lvis-22k", 7, 1206)):
        loaded = load_dataset(resolve_train_dataset(name), with_masks=False)
        assert len(loaded.records) == count and len(loaded.class_names) == classes
        for record in loaded.records:
            assert mapper.read(record).shape == (record["height"], record["width"], 3)
        assert {r["pos_category_ids"][0] for r in loaded.records} >= {0, 2}  # LVIS ids 1, 3 -> contiguous 0, 2
