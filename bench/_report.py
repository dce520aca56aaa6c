"""One shape for every benchmark figure, so `bench/run_all.py` can put them in one report.

A figure compares the same work done plainly and through teeflow, measured in the same run.
``ratio`` is teeflow / plain for ratio targets; for targets on an absolute value (a latency, a
rate) the target applies to ``teeflow`` itself and ``plain`` is the baseline shown beside it.
"""

from __future__ import annotations

import json
import operator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["TARGETS", "Figure", "write_json"]

_COMPARE = {"<=": operator.le, ">=": operator.ge}

TARGETS: dict[str, str] = {
    "P1-mlp": "<= 1.05",  # training time, teeflow / plain
    "P1-cnn": "<= 1.03",
    "P2a": ">= 0.95",  # batch scoring throughput, teeflow / plain
    "P2b": "<= 2",  # online scoring p50, ms added
    "P3-unseal": ">= 0.9",  # throughput / raw AES-256-GCM
    "P3-seal": ">= 0.6",
    "P4": "<= 40",  # trivial task p50, ms, 1 executor
    "P5": ">= 150",  # trivial tasks per second, 2 executors
    "P6": "<= 1.15",  # peak RSS while training, teeflow / plain
    "P8": "<= 10",
}
"""The targets every figure is held to: issue 16's table (P1-P5), one place for all benches."""


@dataclass(frozen=True)
class Figure:
    id: str
    name: str
    plain: float | None
    teeflow: float
    unit: str
    target_on: Literal["ratio", "teeflow", "added"] = "ratio"
    """What the target bounds: teeflow / plain, teeflow itself, or teeflow - plain."""
    target: str = ""
    """``"<= 1.05"`` or ``">= 0.95"``; empty when there is no target."""
    note: str = ""
    split: dict[str, float] = field(default_factory=dict)
    """Where the teeflow figure's time goes (part -> value, in ``split_unit``), when measured."""
    split_unit: str = ""

    def split_text(self) -> str:
        """``"part 1.23 s, other 0.4 s"``, or empty."""
        unit = self.split_unit
        return ", ".join(f"{part} {value:.3g} {unit}" for part, value in self.split.items())

    @property
    def ratio(self) -> float | None:
        if self.plain in (None, 0):
            return None
        return self.teeflow / self.plain

    @property
    def bounded(self) -> float | None:
        if self.target_on == "ratio":
            return self.ratio
        if self.target_on == "added":
            return None if self.plain is None else self.teeflow - self.plain
        return self.teeflow

    @property
    def met(self) -> bool | None:
        if not self.target or self.bounded is None:
            return None
        sign, bound = self.target.split()
        return bool(_COMPARE[sign](self.bounded, float(bound)))

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ratio": self.ratio, "bounded": self.bounded, "met": self.met}


def write_json(figures: list[Figure], path: Path | None) -> None:
    """Write ``figures`` to ``path`` (what each bench script's ``--json`` does)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([f.to_dict() for f in figures], indent=2) + "\n")
