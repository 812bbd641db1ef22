"""Training metrics log: one CSV row per logged step plus TensorBoard scalars (rank 0 only)."""
from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MetricsLog"]

log = logging.getLogger(__name__)


class MetricsLog:
    """Append {name: value} rows to DIR/metrics.csv and DIR/tb (TensorBoard), keyed by step."""

    def __init__(self, folder: str | Path, *, tensorboard: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.folder / "metrics.csv"
        self._fields: list[str] | None = None
        if self.csv_path.is_file() and self.csv_path.stat().st_size:
            with open(self.csv_path, newline="") as f:
                self._fields = next(csv.reader(f), None)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional; the CSV always works
                log.warning("tensorboard is not installed; metrics go to %s only", self.csv_path)
            else:
                self._tb = SummaryWriter(str(self.folder / "tb"))

    def write(self, step: int, values: Mapping[str, float]) -> None:
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        if self._fields is None:
            self._fields = list(row)
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(self._fields)
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, self._fields, extrasaction="ignore").writerow(row)
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"train/{k}", float(v), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
