"""Reading and showing `gair eval` results (eval.json) without torch: the app's About panel
and README tables use this module alone."""

from __future__ import annotations

import json
from pathlib import Path

from gair.run_dir import read_run_config


def markdown_table(result: dict, probe: str = "linear") -> str:
    """Main metric per task (probe rows of one probe kind, plus retrieval/geolocation)."""
    main = {
        "koppen": "accuracy",
        "landcover": "accuracy",
        "continent": "accuracy",
        "elevation_m": "r2",
        "population": "r2",
    }
    methods = ["gair", "location-only", "center-pool", "bilinear", "random-init", "mean-predictor"]
    cells: dict[tuple[str, str], str] = {}
    order: list[tuple[str, str]] = []
    for r in result["rows"]:
        is_probe_task = r["task"] in main
        if is_probe_task and (
            r["metric"] != main[r["task"]] or r.get("probe") not in (probe, "constant")
        ):
            continue
        if not is_probe_task and r["metric"] not in ("R@1", "R@10", "median_km", "within_750km"):
            continue
        key = (r["task"], r["metric"])
        if key not in order:
            order.append(key)
        cells[(key, r["method"])] = (
            f"{r['mean']:.3f} ± {r['std']:.3f}" if r["std"] else f"{r['mean']:.3f}"
        )
    head = (
        "| task | metric | " + " | ".join(methods) + " |\n|---|---|" + "---|" * len(methods) + "\n"
    )
    lines = [
        f"| {t} | {m} | " + " | ".join(cells.get(((t, m), meth), "") for meth in methods) + " |"
        for t, m in order
    ]
    return head + "\n".join(lines) + "\n"


def read_eval(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / "eval.json"
    if not path.is_file():
        return None
    read_run_config(run_dir)
    return json.loads(path.read_text())
