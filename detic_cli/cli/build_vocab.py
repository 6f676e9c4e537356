"""`detic build-vocab`: class names -> CLIP text embeddings (.npy + sidecar JSON)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from detic_cli.cli.app import app
from detic_cli.cli.common import check_writable
from detic_cli.clip.encoder import DEFAULT_CLIP_MODEL, EncoderSpec
from detic_cli.errors import DeticError
from detic_cli.vocab.build import embed_names
from detic_cli.vocab.names import fix_space as fix_space_names
from detic_cli.vocab.names import read_ann_categories, read_names_file, split_names, warn_duplicates
from detic_cli.vocab.prompts import prompt_template
from detic_cli.vocab.sidecar import save_vocabulary


def _collect_names(
    names: str | None, names_file: Path | None, ann: Path | None, avg_synonyms: bool
) -> tuple[list[str], list[list[str]] | None, str]:
    """(class names, synonyms or None, source label) from exactly one of the three inputs."""
    if names is not None and not names.strip(" ,"):
        raise DeticError(f"--names {names!r}: no class names; give them comma-separated, e.g. \"cat,dog\"")
    given = [opt for opt, val in (("--names", names), ("--names-file", names_file), ("--ann", ann)) if val]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --names, --names-file or --ann"
                                 + (f" (got {', '.join(given)})" if given else ""))
    if avg_synonyms and ann is None:
        raise typer.BadParameter("--avg-synonyms needs --ann (an LVIS-style file with synonyms)")
    if names is not None:
        return split_names(names, "--names"), None, "--names"
    if names_file is not None:
        return read_names_file(names_file, "--names-file"), None, f"--names-file {names_file}"
    assert ann is not None
    cat_names, synonyms = read_ann_categories(ann)
    if avg_synonyms and synonyms is None:
        raise DeticError(f"--ann {ann}: categories have no 'synonyms'; drop --avg-synonyms")
    return cat_names, synonyms if avg_synonyms else None, f"--ann {ann}"


@app.command("build-vocab")
def build_vocab(
    out: Path = typer.Option(..., "--out", help="Output .npy (C x D); a sidecar .json is written beside it."),
    names: str = typer.Option(None, "--names", help='Comma-separated class names, e.g. "cat,dog".'),
    names_file: Path = typer.Option(None, "--names-file", help="Text file, one class name per line (UTF-8)."),
    ann: Path = typer.Option(None, "--ann", help="COCO/LVIS json: its categories, sorted by id."),
    prompt: str = typer.Option("a", "--prompt", help='a ("a " + name), none, photo, scene, or a template with {}.'),
    avg_synonyms: bool = typer.Option(False, "--avg-synonyms", help="With --ann: average the synonyms' embeddings."),
    fix_space: bool = typer.Option(False, "--fix-space", help="Underscores to spaces in names (not in synonyms, "
                                   "as the original)."),
    clip_model: str = typer.Option(DEFAULT_CLIP_MODEL, "--clip-model", help="open_clip model, NAME or NAME:TAG "
                                   "(pretrained tag, default openai)."),
    clip_checkpoint: Path = typer.Option(None, "--clip-checkpoint", help="Local CLIP weights (OpenAI, open_clip "
                                         "or Detic caption checkpoint); overrides --clip-model."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sentences per forward pass."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, or float16 as the released files."),
) -> None:
    """Encode class names with CLIP's text tower, exactly as Detic's dump_clip_features.py."""
    if clip_checkpoint is not None and clip_model != DEFAULT_CLIP_MODEL:
        raise typer.BadParameter("give --clip-model or --clip-checkpoint, not both")
    if dtype not in ("float32", "float16"):
        raise typer.BadParameter(f"--dtype {dtype}: expected float32 or float16")
    if out.suffix != ".npy":
        raise typer.BadParameter(f"--out {out}: the file name must end with .npy")
    check_writable(out, "--out")
    template = prompt_template(prompt)
    class_names, synonyms, source = _collect_names(names, names_file, ann, avg_synonyms)
    if fix_space:
        class_names = fix_space_names(class_names)
    warn_duplicates(class_names, source)
    spec = EncoderSpec(clip_model=clip_model, clip_checkpoint=str(clip_checkpoint) if clip_checkpoint else None)
    emb, encoder = embed_names(class_names, template, spec, device=device, batch_size=batch_size,
                               synonyms=synonyms)
    meta = {"names": class_names, "prompt": template, "encoder": encoder, "source": source,
            "fix_space": fix_space, "synonyms_averaged": synonyms is not None}
    side = save_vocabulary(out, emb, meta, dtype=dtype)
    Console(markup=False).print(f"wrote {out} ({side['count']} x {side['dimension']} {dtype}) and "
                    f"{out.with_suffix('.json')}; encoder {encoder}", highlight=False, soft_wrap=True)
