"""Training metrics: a window of recent iterations, `metrics.json` lines and TensorBoard scalars.

`metrics.json` holds one JSON object per line, written every `log_period` iterations by rank 0:
"iteration" (iterations finished, 1-based), "lr" (the largest over the parameter groups, as used by
that iteration: SOLVER.BASE_LR x the schedule unless a multiplier exceeds 1), every `loss_*` term and
"total_loss" (medians over the window, averaged over processes), "time" and "data_time" (median
seconds per iteration: the whole step / waiting for data), "it_per_s", "eta_seconds" and, on CUDA,
"max_mem_mb" (peak allocated memory). Evaluation results are lines with "iteration" and their
metric names. TensorBoard events (same names) go to the same folder.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from detic_cli.utils import atomic_write_bytes

METRICS = "metrics.json"


class Window:
    """Per-iteration values since the last log line."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def add(self, values: dict[str, float]) -> None:
        self.rows.append(values)

    def medians(self) -> dict[str, float]:
        keys = dict.fromkeys(k for row in self.rows for k in row)
        return {k: float(statistics.median(row[k] for row in self.rows if k in row)) for k in keys}

    def clear(self) -> None:
        self.rows = []


def trim_metrics(path: Path, keep_until: int) -> None:
    """Drop the lines of iterations after `keep_until` (written by a run that was interrupted later
    than its last checkpoint), so a resumed run does not log them twice."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(record, dict) and int(record.get("iteration", 0)) <= keep_until:
            kept.append(line)
    atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())


class MetricsLog:
    """Appends records to `output_dir/metrics.json` and TensorBoard; a no-op when not `enabled`
    (ranks other than 0)."""

    def __init__(self, output_dir: Path, *, start_iter: int = 0, enabled: bool = True,
                 tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / METRICS
        self.tb: Any = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trim_metrics(self.path, start_iter)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(output_dir), purge_step=start_iter if start_iter > 0 else None)

    def write(self, record: dict[str, Any]) -> None:
        """One line; every numeric field other than "iteration" also becomes a TensorBoard scalar."""
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=False) + "\n")
        if self.tb is not None:
            step = int(record["iteration"])
            for key, value in record.items():
                if key != "iteration" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None
