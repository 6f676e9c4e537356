"""Facts the raw datasets do not carry, fetched from their public homes through the zoo cache.

Each file is downloaded once into `DETIC_HOME/vocab/` (a mirror folder, base URL or hf:// repo
stands in with `DETIC_ZOO_MIRROR`; `DETIC_OFFLINE=1` uses the cache only):
- LVIS v1 categories with synonyms (`lvis_v1_train_cat_info.json` of the Detic repository),
- the official COCO -> LVIS synset mapping (`coco_to_synset.json` of lvis-api),
- the combined 22047-class LVIS + ImageNet-21K category list (`lvis_22k_categories.py` of Detic),
- WordNet 3.0 (nltk's `wordnet.zip`), which names the synset behind an ImageNet wnid,
- the Objects365 name fixes and the OpenImages challenge-2019 classes and label hierarchy.
"""

from __future__ import annotations

import ast
import csv
from pathlib import Path
from typing import Any

from detic_cli.data.prepare.jsonio import read_json
from detic_cli.errors import DeticError
from detic_cli.vocab.builtin import BUILTINS
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.download import fetch

DETIC_RAW = "https://raw.githubusercontent.com/facebookresearch/Detic/main/"

COCO_TO_SYNSET = Asset(
    "coco_to_synset.json", "https://raw.githubusercontent.com/lvis-dataset/lvis-api/master/data/coco_to_synset.json",
    kind="vocab")
LVIS_22K_CATEGORIES = Asset("lvis_22k_categories.py", DETIC_RAW + "detic/data/datasets/lvis_22k_categories.py",
                            kind="vocab")
WORDNET = Asset("wordnet.zip", "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/wordnet.zip",
                kind="vocab")
OID_HIERARCHY = Asset(
    "challenge-2019-label500-hierarchy.json",
    "https://storage.googleapis.com/openimages/challenge_2019/challenge-2019-label500-hierarchy.json", kind="vocab")

# LVIS v1 has no "frank.n.02" (COCO's hot dog in the official mapping); the original merge and
# caption-tag tools map it to LVIS "sausage.n.01" instead.
COCO_SYNSET_OVERRIDES = {58: "sausage.n.01"}


def _pinned(vocab: str) -> Asset:
    asset = BUILTINS[vocab].names_file
    assert asset is not None
    return asset


def lvis_categories() -> list[dict[str, Any]]:
    """The 1203 LVIS v1 categories (id, name, synset, synonyms, def, frequency, counts), by id."""
    cats = read_json(fetch(_pinned("lvis")))
    return sorted(cats, key=lambda c: c["id"])


def coco_synsets() -> dict[int, str]:
    """COCO category id -> WordNet synset name of the matching LVIS category."""
    data = read_json(fetch(COCO_TO_SYNSET))
    try:
        mapping = {int(v["coco_cat_id"]): str(v["synset"]) for v in data.values()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DeticError(f"{COCO_TO_SYNSET.filename}: expected {{name: {{coco_cat_id, synset}}}}") from exc
    return {**mapping, **COCO_SYNSET_OVERRIDES}


def lvis_22k_categories() -> list[dict[str, Any]]:
    """The original 22047-class list: LVIS ids 1..1203, then the other ImageNet-21K synsets.

    Read from the Python source's `CATEGORIES = [...]` literal without running any code.
    """
    path = fetch(LVIS_22K_CATEGORIES)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        node = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "CATEGORIES" for t in n.targets))
        cats = ast.literal_eval(node)
    except (SyntaxError, ValueError, StopIteration) as exc:
        raise DeticError(f"{path}: no CATEGORIES = [...] literal found; remove it from the cache and retry") from exc
    return sorted(cats, key=lambda c: c["id"])


def wordnet_zip() -> Path:
    return fetch(WORDNET)


def objects365_name_fixes() -> dict[int, tuple[str, str]]:
    """Objects365 category id -> (official name, fixed name), from `id,name,fixed name` rows."""
    with open(fetch(_pinned("objects365")), newline="", encoding="utf-8") as handle:
        return {int(r[0]): (r[1], r[2]) for r in csv.reader(handle) if r}


def oid_classes(local: Path | None = None) -> list[tuple[str, str]]:
    """(freebase id, display name) of the 500 challenge-2019 classes in file order; the local copy
    of `challenge-2019-classes-description-500.csv` when given and present, else the public one."""
    path = local if local is not None and local.is_file() else fetch(_pinned("openimages"))
    with open(path, newline="", encoding="utf-8") as handle:
        return [(r[0], r[1]) for r in csv.reader(handle) if r]


def oid_hierarchy_file() -> Path:
    return fetch(OID_HIERARCHY)
