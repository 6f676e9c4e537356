"""`detic zoo`: list, inspect, download and verify the original model zoo and vocabularies."""

from __future__ import annotations

import json
import shlex

import typer
from rich.console import Console
from rich.table import Table

from detic_cli.checkpoint.convert import KINDS
from detic_cli.cli.app import app
from detic_cli.engine.backbone_weights import converted_asset, converted_assets, pull_backbone, target_config
from detic_cli.errors import DeticError
from detic_cli.progress import Progress, default_progress
from detic_cli.vocab.builtin import (
    BUILTINS,
    BuiltinVocabulary,
    all_vocab_assets,
    builtin_vocabulary,
    is_builtin,
    pull_builtin_vocabulary,
)
from detic_cli.zoo import cache
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.catalog import BACKBONES, ROWS, SECTIONS, STAGES, Backbone, Stage, ZooRow, rows_for, weight_files
from detic_cli.zoo.download import is_cached, pull_all
from detic_cli.zoo.resolve import config_path, find_asset, find_backbone, find_row, find_rows, find_stage
from detic_cli.zoo.verify import verify_asset

zoo_app = typer.Typer(help="The original Detic model zoo: list, inspect, download, verify.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")

MIRROR_HELP = "Base URL, local folder or hf://OWNER/REPO standing in for the public hosts (default $DETIC_ZOO_MIRROR)."
_LABELS = {
    "mask_ap": "mask AP", "mask_ap_novel": "novel", "mask_ap_rare": "rare", "box_ap": "box AP",
    "box_ap_rare": "rare", "box_ap50": "AP50", "box_ap50_novel": "novel", "o365_box_ap": "O365 AP",
    "oid_box_ap50": "OID AP50", "lvis_box_ap": "LVIS box AP", "run_time_ms": "ms",
}


def _console() -> Console:
    """stdout; wide when it is not a terminal, so that piped tables keep names on one line."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _metrics_text(row: ZooRow) -> str:
    return ", ".join(f"{_LABELS[k]} {v:g}" if k == "run_time_ms" else f"{_LABELS[k]} {v:.1f}"
                     for k, v in row.metrics.as_dict().items())


def _check_section(section: str | None) -> None:
    valid = [*SECTIONS, "backbones", "vocabularies"]
    if section is not None and section not in valid:
        raise DeticError(f"--section {section}: choose one of {', '.join(valid)}")


def _records(section: str | None) -> list[dict[str, object]]:
    rows = [dict(r.as_dict(), cached=is_cached(r.weights)) for r in ROWS if section in (None, r.section)]
    backbones = [dict(b.as_dict(), cached=is_cached(b.weights)) for b in BACKBONES]
    vocabs = [_vocab_record(v) for v in BUILTINS.values()]
    return rows + (backbones if section in (None, "backbones") else []) + (
        vocabs if section in (None, "vocabularies") else [])


def _vocab_record(v: BuiltinVocabulary) -> dict[str, object]:
    """One built-in vocabulary as `zoo list --json` gives it (the facts of the package's metadata)."""
    emb = v.embeddings
    return {"section": "vocabularies", "name": v.name, "aliases": list(v.aliases), "num_classes": v.num_classes,
            "classes_file": v.classes_file, "filename": emb.filename, "url": emb.url, "size": emb.size,
            "sha256": emb.sha256, "shape": list(v.embedding_shape), "dtype": v.embedding_dtype,
            "cached": is_cached(emb)}


def _vocab_table() -> Table:
    table = Table(title="Built-in vocabularies (detic detect --vocab NAME)", title_justify="left")
    for col in ("Name", "Aliases", "Classes", "Embedding file", "Bytes", "sha256", "Cached"):
        table.add_column(col, overflow="fold")
    for v in BUILTINS.values():
        emb = v.embeddings
        table.add_row(v.name, ", ".join(v.aliases), str(v.num_classes), emb.filename, str(emb.size),
                      emb.sha256, "yes" if is_cached(emb) else "")
    return table


def _section_table(section: str) -> Table:
    table = Table(title=SECTIONS[section], title_justify="left")
    for col in ("Name", "Train", "Metrics", "Cached"):
        table.add_column(col, overflow="fold")
    for r in ROWS:
        if r.section == section:
            table.add_row(r.name, r.training_time or "-", _metrics_text(r), "yes" if is_cached(r.weights) else "")
    return table


@zoo_app.command("list")
def list_models(
    section: str = typer.Option(None, "--section", "-s",
                                help=f"One of {', '.join(SECTIONS)}, backbones, vocabularies."),
    as_json: bool = typer.Option(False, "--json", help="Print every record as JSON (with its weight URL)."),
) -> None:
    """List the zoo rows, third-party backbones and built-in vocabularies with their metrics and cache state."""
    _check_section(section)
    if as_json:
        typer.echo(json.dumps(_records(section), indent=2))
        return
    console = _console()
    for key in SECTIONS:
        if section in (None, key):
            console.print(_section_table(key))
    if section in (None, "backbones"):
        table = Table(title="Third-party backbones", title_justify="left")
        for col in ("Name", "Backbone", "Original config weights", "Cached"):
            table.add_column(col, overflow="fold")
        for b in BACKBONES:
            table.add_row(b.name, b.title, b.original_weights, "yes" if is_cached(b.weights) else "")
        console.print(table)
    if section in (None, "vocabularies"):
        console.print(_vocab_table())


def _cache_line(asset: Asset) -> str:
    path, record = cache.cached_path(asset), cache.read_record(asset)
    if not is_cached(asset):
        return f"not cached (would be {path})"
    if record is None:
        return f"{path} (not yet hashed: run `detic zoo verify`)"
    return f"{path} ({record.size} bytes, sha256 {record.sha256})"


def _init_line(init: str) -> str:
    backbone = find_backbone(init)
    if backbone is not None:
        return f"{init} (backbone, {backbone.weights.url})"
    if init in weight_files():
        return f"{init} ({weight_files()[init].url})"
    stage = next(s for s in STAGES if s.name == init)
    return f"{init} (unpublished; train it: detic train --row {stage.name}; it starts from {stage.init})"


def _commands(row: ZooRow) -> list[tuple[str, str]]:
    evals = " ".join(shlex.quote(w) for w in row.eval_overrides)
    pairs = (w.split("=", 1) for w in row.eval_overrides)
    original_opts = " ".join(f"{key} {shlex.quote(value)}" for key, value in pairs)
    weights = cache.cached_path(row.weights)
    return [
        ("detect", f"detic detect IMAGE --model {shlex.quote(row.name)} --vocab {row.vocab}"),
        ("train", f"detic train --row {shlex.quote(row.name)}"),
        ("evaluate", f"detic eval --config configs/{row.config} --weights {weights} {evals}".rstrip()),
        ("original train", f"python train_net.py --num-gpus 8 --config-file configs/{row.config}"),
        ("original eval", f"python train_net.py --num-gpus 8 --config-file configs/{row.config} --eval-only "
                          f"MODEL.WEIGHTS models/{row.weights.filename} {original_opts}".rstrip()),
    ]


def _row_info(row: ZooRow) -> list[tuple[str, str]]:
    others = [r.name for r in rows_for(row.stem) if r.name != row.name]
    return [
        ("name", row.name), ("title", row.title), ("section", SECTIONS[row.section]),
        ("config", str(config_path(row.config))), ("original config", f"configs/{row.config} (Detic repository)"),
        ("weights", row.weights.url), ("cache", _cache_line(row.weights)),
        ("training time", row.training_time or "not reported"), ("metrics", _metrics_text(row)),
        ("init weights", _init_line(row.init)), ("also evaluated as", ", ".join(others) or "-"),
        ("eval overrides", " ".join(row.eval_overrides) or "-"), ("default vocabulary", row.vocab),
        *_commands(row),
    ]


def _stage_info(stage: Stage) -> list[tuple[str, str]]:
    users = [r.name for r in ROWS if r.init == stage.name]
    return [
        ("name", stage.name), ("weights", "never published: train this stage yourself"),
        ("config", str(config_path(stage.config))), ("init weights", _init_line(stage.init)),
        ("initialises", ", ".join(users) or "-"),
        ("train", f"detic train --row {stage.name}"),
        ("then", "pass its model_final.pth to the rows above with `detic train --row ROW --weights PTH`"),
    ]


def _conversion_line(b: Backbone) -> str:
    kind = b.converter
    by_hand = f"; by hand: detic convert-pretrained --kind {kind}" if kind in KINDS else ""
    return f"done by `detic zoo pull {b.name}` ({kind} -> detector keys of configs/{target_config(b)}{by_hand})"


def _backbone_info(b: Backbone) -> list[tuple[str, str]]:
    users = [r.name for r in ROWS if r.init == b.name] + [s.name for s in STAGES if s.init == b.name]
    return [
        ("name", b.name), ("title", b.title), ("weights", b.weights.url), ("cache", _cache_line(b.weights)),
        ("original config weights", b.original_weights),
        ("conversion", _conversion_line(b)),
        ("converted", _cache_line(converted_asset(b))),
        ("initialises", ", ".join(users)), ("pull", f"detic zoo pull {b.name}"),
    ]


def _vocab_info(v: BuiltinVocabulary) -> list[tuple[str, str]]:
    emb, names = v.embeddings, v.class_names()
    counts = {f: sum(c.frequency == f for c in v.classes()) for f in ("r", "c", "f")}
    source = f", extracted from {v.names_file.filename} ({v.names_file.url})" if v.names_file else ""
    return [
        ("name", v.name), ("aliases", ", ".join(v.aliases) or "-"),
        ("classes", f"{v.num_classes}: {', '.join(names[:5])}, ... {names[-1]}"),
        *([("frequency", f"rare {counts['r']}, common {counts['c']}, frequent {counts['f']}")]
          if any(counts.values()) else []),
        ("class names", f"shipped with detic (metadata/{v.classes_file}){source}"),
        ("embeddings", f"{emb.filename}: {' x '.join(map(str, v.embedding_shape))} {v.embedding_dtype} "
                       "CLIP ViT-B/32 text features of \"a \" + class name"),
        ("url", emb.url), ("size", f"{emb.size} bytes"), ("sha256", str(emb.sha256)), ("cache", _cache_line(emb)),
        ("pull", f"detic zoo pull --vocab {v.name} [--mirror DIR|URL|hf://OWNER/REPO]"),
        ("detect", f"detic detect IMAGE --vocab {v.name}"),
    ]


@zoo_app.command("info")
def info(name: str = typer.Argument(..., help="A row name, checkpoint name, table title, backbone or "
                                              "built-in vocabulary (lvis, objects365, openimages, coco).")) -> None:
    """Everything known about one model, backbone or vocabulary, with the commands to run, train and evaluate it."""
    backbone, stage = find_backbone(name), find_stage(name) if not find_rows(name) else None
    if is_builtin(name) and not find_rows(name):
        lines = _vocab_info(builtin_vocabulary(name))
    elif backbone:
        lines = _backbone_info(backbone)
    else:
        lines = _stage_info(stage) if stage else _row_info(find_row(name))
    table = Table(show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in lines:
        table.add_row(key, value)
    _console().print(table)


@zoo_app.command("pull")
def pull(
    names: list[str] = typer.Argument(None, help="Rows, checkpoints or backbones to download."),
    all_: bool = typer.Option(False, "--all", help="Every released checkpoint (22 files)."),
    backbones: bool = typer.Option(False, "--backbones", help="Every third-party backbone."),
    vocab: list[str] = typer.Option(None, "--vocab", help=f"Built-in vocabulary: {', '.join(BUILTINS)} (repeatable)."),
    mirror: str = typer.Option(None, "--mirror", help=MIRROR_HELP),
) -> None:
    """Download checkpoints, backbones or vocabularies into DETIC_HOME (resumable, verified); backbones are
    also converted to detector keys (`NAME.detector.pth`), ready to start training from."""
    if not (names or all_ or backbones or vocab):
        raise DeticError("detic zoo pull: name what to pull (NAME..., --all, --backbones or --vocab NAME)")
    assets = [find_asset(n) for n in names or [] if find_backbone(n) is None]
    assets += list(weight_files().values()) if all_ else []
    wanted = [b for b in (find_backbone(n) for n in names or []) if b is not None]
    wanted += list(BACKBONES) if backbones else []
    progress = default_progress()
    console = _console()
    for asset, path in zip(assets, pull_all(assets, mirror=mirror, progress=progress)):
        console.print(f"{asset.filename}: {path}", highlight=False)
    for backbone in dict.fromkeys(wanted):
        _pull_backbone(backbone, mirror, progress, console)
    for name in vocab or []:
        for path in pull_builtin_vocabulary(name, mirror=mirror, progress=progress):
            console.print(f"{name}: {path}", highlight=False)


def _pull_backbone(backbone: Backbone, mirror: str | None, progress: Progress, console: Console) -> None:
    pulled = pull_backbone(backbone, mirror=mirror, progress=progress)
    state = "converted" if pulled.converted else "up to date"
    console.print(f"{backbone.weights.filename}: {pulled.source}", highlight=False)
    console.print(f"{pulled.path.name}: {pulled.path} ({state}; detector keys of configs/{pulled.config})",
                  highlight=False)


@zoo_app.command("verify")
def verify() -> None:
    """Re-hash every cached checkpoint, backbone (and its conversion) and vocabulary file against its known or
    recorded sha256."""
    assets = list(weight_files().values()) + [b.weights for b in BACKBONES] + all_vocab_assets()
    assets += [a for a in converted_assets() if cache.cached_path(a).is_file()]  # conversions made by pull
    verdicts = [verify_asset(a) for a in assets]
    table = Table(title=f"Cache {cache.detic_home()}", title_justify="left")
    for col in ("File", "Status", "Detail"):
        table.add_column(col, overflow="fold")
    for v in verdicts:
        if v.status != "missing":
            table.add_row(v.asset.filename, v.status, v.detail)
    console = _console()
    console.print(table)
    counts = {s: sum(v.status == s for v in verdicts) for s in ("ok", "recorded", "partial", "corrupt", "missing")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
    bad = [v.asset.filename for v in verdicts if v.status == "corrupt"]
    if bad:
        raise DeticError(f"{len(bad)} cached file(s) are corrupt: {', '.join(bad)}; delete them and pull again")


