"""The zoo's cross-dataset evaluation: one detector, without its mask head, on Objects365 (box mAP with the
Objects365 vocabulary) and OpenImages (challenge box mAP50 with hierarchy expansion, OpenImages vocabulary).

Each benchmark is an ordinary resumable eval run (`engine.evaluate.evaluate`, in this process) in
`<output dir>/<dataset>/` (shards, results.json, metrics.json) with the model's cross-dataset settings: the
eval overrides of its row in the zoo's cross-dataset section (where it has one) and the mask head off. This
module names the benchmarks, runs them, reads their metrics back and writes the summary `cross_eval.json`:
per dataset the measured number (percent, None while unfinished) beside the published one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detic_cli.data.catalog import resolve_dataset
from detic_cli.engine.dist import DistInfo
from detic_cli.engine.evaluate import EvalReport, evaluate
from detic_cli.errors import DeticError
from detic_cli.progress import Progress
from detic_cli.utils import atomic_write_bytes
from detic_cli.zoo.catalog import ZooRow, rows_for
from detic_cli.zoo.resolve import find_row, resolve_model

SUMMARY = "cross_eval.json"
MASK_OFF = "MODEL.MASK_ON=False"


@dataclass(frozen=True)
class CrossTarget:
    """One benchmark of the cross-dataset table.

    key: short name (`--dataset`); dataset: the named evaluation dataset; vocab: the built-in vocabulary it
    is evaluated with; metric: its key in metrics.json; column: the zoo table's column title;
    published: the zoo `Metrics` field holding the published number.
    """

    key: str
    dataset: str
    vocab: str
    metric: str
    column: str
    published: str
    aliases: tuple[str, ...] = ()


TARGETS: tuple[CrossTarget, ...] = (
    CrossTarget("objects365", "objects365_v2_val", "objects365", "bbox/AP", "Objects365 box mAP", "o365_box_ap",
                ("o365",)),
    CrossTarget("oid", "oid_val_expanded", "openimages", "bbox/AP50_expand", "OpenImages box mAP50", "oid_box_ap50",
                ("openimages",)),
)


def select_targets(names: list[str] | None) -> list[CrossTarget]:
    """The benchmarks called `names` (key, alias or dataset name, case-insensitive), in table order; all when
    `names` is empty."""
    if not names:
        return list(TARGETS)
    chosen: set[str] = set()
    for name in names:
        key = name.strip().lower()
        found = next((t for t in TARGETS if key in (t.key, t.dataset, *t.aliases)), None)
        if found is None:
            valid = ", ".join(n for t in TARGETS for n in (t.key, *t.aliases))
            raise DeticError(f"--dataset {name}: choose one of {valid}")
        chosen.add(found.key)
    return [t for t in TARGETS if t.key in chosen]


@dataclass(frozen=True)
class CrossEvalReport:
    """summary: the content of cross_eval.json (None on the ranks other than 0); path: that file."""

    summary: dict[str, Any] | None
    path: Path


def cross_evaluate(*, row: str, datasets: Sequence[str] = (), output_dir: str | Path | None = None,
                   device: str = "auto", batch_size: int = 1, fresh: bool = False, overrides: Sequence[str] = (),
                   mirror: str | None = None, progress: Progress | None = None,
                   on_dataset: Callable[[CrossTarget, EvalReport], None] | None = None) -> CrossEvalReport:
    """Evaluate the zoo `row` on each benchmark of `datasets` (default all; see `select_targets`) in
    `output_dir/<dataset>/` (default eval/MODEL-cross-dataset) and write cross_eval.json there.
    `on_dataset` hears of each benchmark's report as it finishes."""
    targets = select_targets(list(datasets))
    for target in targets:  # a missing dataset says which files go where, before anything is downloaded
        resolve_dataset(target.dataset)
    found = find_row(row)
    shown = cross_row(found) or found
    config, weights = resolve_model(row, mirror=mirror)
    words = eval_overrides(shown.eval_overrides if shown.section == "cross-dataset" else (), list(overrides))
    out = Path(output_dir) if output_dir is not None else Path("eval") / f"{found.stem}-cross-dataset"
    main = DistInfo.from_env().is_main
    for target in targets:
        folder = out / target.dataset
        if main:  # metrics.json of an earlier run must not pass for this one's
            (folder / "metrics.json").unlink(missing_ok=True)
        report = evaluate(config=config, weights=weights, dataset=target.dataset, vocab=target.vocab,
                          output_dir=folder, device=device, batch_size=batch_size, fresh=fresh, overrides=words,
                          mirror=mirror, progress=progress)
        if on_dataset is not None:
            on_dataset(target, report)
    if not main:
        return CrossEvalReport(None, out / SUMMARY)
    summary = build_summary(shown, config, weights, words, out, targets)
    write_summary(out / SUMMARY, summary)
    return CrossEvalReport(summary, out / SUMMARY)


def cross_row(row: ZooRow) -> ZooRow | None:
    """The row of the same checkpoint in the zoo's cross-dataset section (its settings and published numbers)."""
    return next((r for r in rows_for(row.stem) if r.section == "cross-dataset"), None)


def build_summary(row: ZooRow, config: Path, weights: Path, words: list[str], out: Path,
                  targets: list[CrossTarget]) -> dict[str, Any]:
    """cross_eval.json: the row, its files and settings, its published numbers and each benchmark's entry."""
    metrics = row.metrics.as_dict()
    published = {t.published: metrics.get(t.published) for t in TARGETS}
    return {"row": row.name, "title": row.title, "checkpoint": row.stem, "training_time": row.training_time,
            "url": row.weights.url, "config": str(config), "weights": str(weights), "overrides": words,
            "published": published,
            "datasets": {t.dataset: target_summary(t, out / t.dataset, published[t.published]) for t in targets}}


def eval_overrides(row_overrides: list[str] | tuple[str, ...], user: list[str]) -> list[str]:
    """KEY=VALUE words of the run: the row's cross-dataset eval overrides, the mask head off, then the user's."""
    words = list(row_overrides)
    if MASK_OFF not in words:
        words.append(MASK_OFF)
    return words + list(user)


def read_metrics(folder: Path) -> dict[str, float] | None:
    """metrics.json of a finished eval run in `folder` (NaN for null), or None when there is none."""
    try:
        data = json.loads((folder / "metrics.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DeticError(f"{folder / 'metrics.json'}: unreadable ({type(exc).__name__}); rerun to rewrite it") from exc
    return {str(k): (math.nan if v is None else float(v)) for k, v in data.items()}


def target_summary(target: CrossTarget, folder: Path, published: float | None) -> dict[str, Any]:
    """One dataset's entry of cross_eval.json."""
    metrics = read_metrics(folder)
    measured = metrics.get(target.metric) if metrics is not None else None
    return {"dataset": target.dataset, "vocab": target.vocab, "metric": target.metric, "column": target.column,
            "measured": None if measured is None or math.isnan(measured) else measured, "published": published,
            "output_dir": str(folder), "metrics": metrics}


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """cross_eval.json, written atomically (NaN written as null)."""
    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    atomic_write_bytes(path, (json.dumps(clean(summary), indent=1) + "\n").encode("utf-8"))
