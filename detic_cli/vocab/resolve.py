"""`--vocab SPEC` -> class names and their classifier embeddings (what `detic detect` uses)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detic_cli.clip.encoder import DEFAULT_CLIP_MODEL, EncoderSpec
from detic_cli.errors import DeticError
from detic_cli.vocab.build import embed_names
from detic_cli.vocab.builtin import BUILTINS, builtin_vocabulary, fetch_builtin_vocabulary
from detic_cli.vocab.names import drop_duplicates, read_names_file, require_names, split_names, warn
from detic_cli.vocab.prompts import DEFAULT_PROMPT, prompt_template
from detic_cli.vocab.sidecar import array_sha256, read_sidecar

BUILTIN_VOCABULARIES = tuple(n for v in BUILTINS.values() for n in (v.name, *v.aliases))


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """`names`: C class names; `embeddings`: (C, D) float32 CLIP text features, unnormalised, or None
    for the names of a closed-vocabulary model's own learned classes (see `builtin_names`);
    `source`: where they came from (`builtin:lvis`, `builtin-names:lvis`, `npy:PATH`, `names`,
    `names-file:PATH`)."""

    names: list[str]
    embeddings: np.ndarray | None
    source: str


def _builtin(name: str, mirror: str | None) -> Vocabulary:
    names, emb = fetch_builtin_vocabulary(name, mirror=mirror)
    return Vocabulary(list(names), np.asarray(emb, dtype=np.float32), f"builtin:{name}")


def builtin_names(name: str) -> Vocabulary:
    """The class names of the built-in vocabulary `name` (lvis, o365, ...) with no embeddings: what a
    closed-vocabulary model (Deformable DETR's learned 1203-class LVIS classifier) needs to label its
    classes. Read from the package; nothing is downloaded."""
    vocab = builtin_vocabulary(name)
    return Vocabulary(vocab.class_names(), None, f"builtin-names:{vocab.name}")


def _npy_names(path: Path, count: int, names_file: str | None, array: np.ndarray) -> list[str]:
    """Names for the rows of an embeddings file: --vocab-names, else the sidecar, else class_N."""
    if names_file:
        names = read_names_file(names_file, "--vocab-names")
        if len(names) != count:
            raise DeticError(f"--vocab-names {names_file}: {len(names)} names for {count} rows of {path}; "
                             "give one name per row")
        return names
    side = read_sidecar(path)
    if side is None:
        return [f"class_{i}" for i in range(count)]
    if len(side["names"]) != count:
        raise DeticError(f"{path.with_suffix('.json')}: {len(side['names'])} names for {count} rows; "
                         "rebuild the vocabulary or pass --vocab-names")
    if side.get("sha256") and side["sha256"] != array_sha256(array):
        warn(f"{path}: the array differs from the one its sidecar describes (sha256); names used anyway")
    return [str(n) for n in side["names"]]


def _from_npy(spec: str, names_file: str | None) -> Vocabulary:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DeticError(f"--vocab {spec}: file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DeticError(f"--vocab {spec}: not a readable .npy array ({type(exc).__name__})") from exc
    if array.ndim == 2 and array.shape[0] == 0:
        raise DeticError(f"--vocab {spec}: has no classes (shape {tuple(array.shape)}); give at least one row")
    if array.ndim != 2 or array.shape[1] < 1:
        raise DeticError(f"--vocab {spec}: expected a 2-D (classes x dim) array, got shape {tuple(array.shape)}")
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise DeticError(f"--vocab {spec}: expected finite floating-point embeddings, got {array.dtype}")
    names = _npy_names(path, array.shape[0], names_file, array)
    return Vocabulary(names, array.astype(np.float32), f"npy:{path}")


def resolve_vocabulary(
    spec: str,
    *,
    names_file: str | None = None,
    vocab_file: str | None = None,
    clip_checkpoint: str | None = None,
    clip_model: str = DEFAULT_CLIP_MODEL,
    device: str = "cpu",
    mirror: str | None = None,
) -> Vocabulary:
    """Resolve `spec`: a built-in name, a `.npy` path (names from `names_file`, the sidecar JSON or
    `class_N`), or comma-separated class names encoded with CLIP ("a " + name), cached in
    DETIC_HOME. `vocab_file` (one name per line) replaces `spec`, which must then be empty.
    Raises DeticError for any bad input; warns on stderr for what it drops or truncates."""
    spec = (spec or "").strip()
    encoder = EncoderSpec(clip_model=clip_model, clip_checkpoint=clip_checkpoint)
    check_spec(spec, vocab_file=vocab_file)
    if vocab_file:
        names = drop_duplicates(read_names_file(vocab_file, "--vocab-file"), "--vocab-file")
        return _encode(names, encoder, device, f"names-file:{vocab_file}")
    if spec.lower() in BUILTIN_VOCABULARIES:
        if names_file:
            warn(f"--vocab-names {names_file} is ignored: the built-in vocabulary {spec} has its own names")
        return _builtin(spec.lower(), mirror)
    if spec.lower().endswith(".npy"):
        return _from_npy(spec, names_file)
    if Path(spec).expanduser().is_file():
        raise DeticError(f"--vocab {spec}: a file that is not a .npy; pass a names file with --vocab-file")
    if names_file:
        warn(f"--vocab-names {names_file} is ignored: it names the rows of a .npy vocabulary")
    names = drop_duplicates(split_names(spec, "--vocab"), "--vocab")
    near = difflib.get_close_matches(spec.lower(), list(BUILTIN_VOCABULARIES), n=1, cutoff=0.75)
    hint = f"--vocab {spec} is read as a class name; did you mean the built-in {near[0]}?" if near else ""
    try:
        vocabulary = _encode(names, encoder, device, "names")
    except DeticError as exc:
        raise DeticError(f"{exc} ({hint})" if hint else str(exc)) from exc
    if hint:
        warn(hint)
    return vocabulary


def check_spec(spec: str | None, *, vocab_file: str | Path | None = None) -> None:
    """The checks of `resolve_vocabulary` that need no file, model, CLIP or network (both --vocab and
    --vocab-file, an empty --vocab, names that are only commas), so that callers can refuse such input before
    pulling model files. Raises DeticError."""
    spec = (spec or "").strip()
    if vocab_file:
        if spec:
            raise DeticError(f"--vocab {spec!r} and --vocab-file {vocab_file}: give only one of them")
        return
    if not spec:
        raise DeticError("--vocab: empty; give a built-in name (lvis, objects365, openimages, coco), "
                         "a .npy file or class names such as \"cat,dog\"")
    require_names(spec, "--vocab")


def _encode(names: list[str], encoder: EncoderSpec, device: str, source: str) -> Vocabulary:
    emb, _ = embed_names(names, prompt_template(DEFAULT_PROMPT), encoder, device=device)
    return Vocabulary(names, emb, source)


def vocabulary_from_names(names: list[str], *, clip_checkpoint: str | None = None,
                          clip_model: str = DEFAULT_CLIP_MODEL, device: str = "cpu") -> Vocabulary:
    """Class names (a list; duplicates dropped with a warning) encoded as `--vocab "a,b"` is, with the same
    DETIC_HOME cache."""
    cleaned = [str(n).strip() for n in names]
    if not cleaned or any(not n for n in cleaned):
        raise DeticError("vocabulary: give at least one class name, none of them empty")
    encoder = EncoderSpec(clip_model=clip_model, clip_checkpoint=clip_checkpoint)
    return _encode(drop_duplicates(cleaned, "vocabulary"), encoder, device, "names")
