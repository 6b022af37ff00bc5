"""Downstream tasks on the demo world's labels: what each predicts and how it is scored."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KOPPEN = ["A (tropical)", "B (arid)", "C (temperate)", "D (continental)", "E (polar)"]


@dataclass
class Task:
    name: str
    kind: str  # "classification" | "regression"
    units: str = ""
    classes: list[str] = field(default_factory=list)

    def encode(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World label values -> (targets, valid mask). Classes become indices into `classes`."""
        if self.kind == "regression":
            y = np.asarray(values, dtype=np.float64)
            return y, np.isfinite(y)
        if self.name == "koppen":  # 1..5 = A..E; 0 (none) is not a class
            v = np.asarray(values, dtype=np.int64)
            return v - 1, (v >= 1) & (v <= 5)
        values = np.asarray(values)
        if np.issubdtype(values.dtype, np.integer):  # integer codes index `classes` (IGBP 0..16)
            idx = values.astype(np.int64)
            return idx, (idx >= 0) & (idx < len(self.classes))
        lookup = {c: i for i, c in enumerate(self.classes)}
        idx = np.array([lookup.get(str(v), -1) for v in values], dtype=np.int64)
        return idx, idx >= 0


def default_tasks(igbp_names: list[str], continents: list[str]) -> list[Task]:
    return [
        Task("koppen", "classification", classes=list(KOPPEN)),
        Task("landcover", "classification", classes=list(igbp_names)),
        Task("elevation_m", "regression", units="m"),
        Task("population", "regression", units="log10(1 + people within 50 km)"),
        Task("continent", "classification", classes=sorted(c for c in continents if c)),
    ]


def task_from_dict(d: dict) -> Task:
    return Task(d["name"], d["kind"], d.get("units", ""), list(d.get("classes", [])))
