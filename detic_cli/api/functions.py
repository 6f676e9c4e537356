"""The commands other than detect as functions: build_vocab, zoo_list, zoo_pull, evaluate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detic_cli.errors import DeticError

if TYPE_CHECKING:
    from detic_cli.engine.model_setup import VocabSpec


def build_vocab(names: Sequence[str] | str, out: str | Path | None = None, *, prompt: str = "a",
                clip_model: str | None = None, clip_checkpoint: str | Path | None = None, device: str = "auto",
                dtype: str = "float32") -> np.ndarray:
    """(C, D) float32 CLIP text embeddings of class names ("a,b" or a list), as `detic build-vocab`:
    prompt "a" ("a " + name), none, photo, scene or a template with {}. With `out` (a .npy path), also
    written with its sidecar JSON (names, prompt, encoder), usable as `vocab=out`."""
    from detic_cli.clip.encoder import DEFAULT_CLIP_MODEL, EncoderSpec
    from detic_cli.vocab.build import embed_names
    from detic_cli.vocab.names import split_names, warn_duplicates
    from detic_cli.vocab.prompts import prompt_template
    from detic_cli.vocab.sidecar import save_vocabulary

    class_names = split_names(names, "names") if isinstance(names, str) else [str(n).strip() for n in names]
    if not class_names or not all(class_names):
        raise DeticError("build_vocab: give at least one class name, none of them empty")
    if dtype not in ("float32", "float16"):
        raise DeticError(f"build_vocab dtype={dtype!r}: expected float32 or float16")
    if out is not None and Path(out).suffix != ".npy":
        raise DeticError(f"build_vocab out={out}: the file name must end with .npy")
    warn_duplicates(class_names, "names")
    template = prompt_template(prompt)
    spec = EncoderSpec(clip_model=clip_model or DEFAULT_CLIP_MODEL,
                       clip_checkpoint=str(clip_checkpoint) if clip_checkpoint else None)
    emb, encoder = embed_names(class_names, template, spec, device=device)
    if out is not None:
        save_vocabulary(Path(out), emb, {"names": class_names, "prompt": template, "encoder": encoder,
                                         "source": "python", "fix_space": False, "synonyms_averaged": False},
                        dtype=dtype)
    return np.asarray(emb, dtype=np.float32)


def zoo_list(section: str | None = None) -> list[dict[str, Any]]:
    """The model zoo's rows (name, section, config, weights file, metrics, ...) with `cached`, optionally
    of one section (`detic zoo list --section S`)."""
    from detic_cli.zoo.catalog import ROWS, SECTIONS
    from detic_cli.zoo.download import is_cached

    if section is not None and section not in SECTIONS:
        raise DeticError(f"section {section!r}: expected one of {', '.join(SECTIONS)}")
    return [dict(r.as_dict(), cached=is_cached(r.weights)) for r in ROWS if section in (None, r.section)]


def zoo_pull(*names: str, vocab: Sequence[str] = (), mirror: str | None = None) -> list[Path]:
    """Download zoo checkpoints (rows or file names) and built-in vocabularies (`vocab`) into DETIC_HOME,
    resumable and verified, as `detic zoo pull`; returns the cached paths."""
    from detic_cli.vocab.builtin import pull_builtin_vocabulary
    from detic_cli.zoo.download import pull_all
    from detic_cli.zoo.resolve import find_asset

    if not names and not vocab:
        raise DeticError("zoo_pull: name what to pull (zoo names, or vocab=[...])")
    paths = pull_all([find_asset(n) for n in names], mirror=mirror)
    for name in vocab:
        paths += list(pull_builtin_vocabulary(name, mirror=mirror))
    return paths


def evaluate(dataset: str | None = None, *, model: str | None = None, config: str | Path | None = None,
             weights: str | Path | None = None, vocab: VocabSpec = None, names: Sequence[str] | None = None,
             output_dir: str | Path | None = None, device: str = "auto", batch_size: int = 1,
             amp: str | None = None, max_images: int | None = None, fresh: bool = False,
             overrides: Sequence[str] = (), clip_checkpoint: str | Path | None = None, mirror: str | None = None,
             onnx: str | Path | None = None, progress: bool = False) -> dict[str, float]:
    """Evaluate a detector on a benchmark, as `detic eval`, and return its metrics.

    dataset: a named dataset (`detic data status`), `coco:ANN.json:IMAGES_DIR` or `lvis:ANN.json:IMAGES_DIR`
    (default: the config's DATASETS.TEST). model: a zoo row, or config + weights. vocab: one row per dataset
    category, sorted by category id: a built-in name, "a,b", a .npy path, a list of class names (CLIP-encoded),
    or a (C, D) array (labelled by `names`); default the named dataset's own vocabulary. output_dir (default
    eval/MODEL-ANNOTATION) receives resumable per-image shards, results.json (COCO results) and metrics.json;
    a call with the same output_dir goes on where an earlier one stopped (`max_images` new images at most),
    `fresh` starts over. amp: off, fp16 or bf16. onnx: a model of `detic export`, run in onnxruntime instead of
    model/config/weights (`detic eval --backend onnxruntime --onnx`). progress: draw a bar on stderr.

    Returns {"<iou type>/<metric>": value}: `bbox/...` always, `segm/...` when the model has a mask head and
    the dataset annotates masks. Metric names are the dataset's evaluator's, in percent, NaN where nothing is
    annotated: COCO and Objects365 the 12 COCO numbers (AP, AP50, AP75, APs/m/l, AR@1/10/100, ARs/m/l@100);
    open-vocabulary COCO also AP50-seen and AP50-unseen; LVIS AP, AP50, AP75, APs/m/l, APr/c/f, AR@300;
    OpenImages AP50 and AP50_expand. This is the content of metrics.json. The dict is empty while images are
    left (max_images) and on the ranks other than 0 under torchrun.
    """
    from detic_cli.engine.evaluate import evaluate as run_evaluation
    from detic_cli.progress import BarProgress, NullProgress

    prebuilt = None
    if onnx is not None:
        from detic_cli.export.eval_model import exported_eval_model

        prebuilt = exported_eval_model(onnx, list(overrides))
    report = run_evaluation(model=model, config=config, weights=weights, dataset=dataset, vocab=vocab, names=names,
                            clip_checkpoint=clip_checkpoint, output_dir=output_dir, device=device,
                            batch_size=batch_size, amp=amp, max_images=max_images, fresh=fresh,
                            overrides=overrides, mirror=mirror, prebuilt=prebuilt,
                            progress=BarProgress(unit="items", bars=True) if progress else NullProgress())
    return dict(report.metrics)


def label(sources: Sequence[str | Path] | str | Path, *, out: str | Path, model: str | None = None,
          config: str | Path | None = None, weights: str | Path | None = None, vocab: str | Sequence[str] | None = None,
          ontology: str | dict[str, Any] | None = None, format: str = "coco", masks: str = "polygon",
          split: str = "train=1", seed: int = 0, threshold: float = 0.5, class_threshold: str | dict | None = None,
          min_box_area: float = 0.0, max_detections: int | None = None, merge_iou: float = 0.5,
          drop_empty: bool = False, copy_images: bool = False, every: int = 1, track: bool = False,
          device: str = "auto", batch_size: int = 1, amp: str | None = None, overrides: Sequence[str] = (),
          clip_checkpoint: str | Path | None = None, mirror: str | None = None, fresh: bool = False,
          skip_bad: bool = False, max_images: int | None = None, progress: bool = False) -> Any:
    """Auto-label pictures and videos into a COCO and/or YOLO dataset in `out`, as `detic label`.

    sources: pictures, folders, globs, videos (every `every`-th frame) or text files listing them. vocab: the
    prompts ("a,b", a built-in name, a .npy, a list of names), each its own class; ontology: prompts -> classes
    ("milk bottle=bottle,bottle cap=cap", a YAML/JSON file or a dict), the vocabulary being its prompts unless
    `vocab` is given. format: coco, yolo or both; masks: polygon, rle or none; split: "train=0.8,val=0.2" by a
    hash of each path (with `seed`). A call with the same `out` goes on where an earlier one stopped (`fresh`
    starts over). Returns the `LabelReport` (out, total, done, skipped, labelled, main, summary: images,
    detections per class, empty and unreadable inputs; summary is None while inputs are left).
    """
    from detic_cli.engine.label import LabelOptions
    from detic_cli.engine.label import label as run_label
    from detic_cli.engine.label_job import LabelFilters
    from detic_cli.progress import BarProgress, NullProgress

    tracking = None
    if track:
        from detic_cli.engine.tracking import TrackSettings, check_installed

        check_installed()
        tracking = TrackSettings()
    options = LabelOptions(threshold=threshold, class_threshold=class_threshold, filters=LabelFilters(
        min_box_area, max_detections, merge_iou), format=format, masks=masks, split=split, seed=seed,
        drop_empty=drop_empty, copy_images=copy_images, every=every)
    words = [sources] if isinstance(sources, (str, Path)) else list(sources)
    return run_label([str(w) for w in words], out=out, model=model, config=config, weights=weights, vocab=vocab,
                     clip_checkpoint=clip_checkpoint, ontology=ontology, options=options, device=device,
                     batch_size=batch_size, amp=amp, overrides=overrides, mirror=mirror, fresh=fresh,
                     skip_bad=skip_bad, max_images=max_images, track=tracking,
                     progress=BarProgress(unit="items", bars=True, rate="images") if progress else NullProgress())
