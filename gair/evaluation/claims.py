"""The README's claims, checked against one or more eval.json files (one per training seed):
`python -m gair.evaluation.claims RUN [RUN ...]` (run dirs or eval.json files) prints a pass/fail table and exits 1
when a claim fails on any run. A claim is only written in the README if it holds on all runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gair.evaluation.report import MAIN, primary_prior, read_result

INHABITED = ("Africa", "Asia", "Europe", "North America", "Oceania", "South America")


def _row(rows, **want):
    return next((r for r in rows if all(r.get(k) == v for k, v in want.items())), None)


def check(result: dict) -> dict[str, tuple[bool, str]]:
    """{claim: (holds, the figures behind it)} for one eval.json."""
    rows, comps = result["rows"], result.get("comparisons", [])
    out = {}
    for base in ("random-init/inr/linear", "raw-pixels/pixels/linear"):
        wins = []
        for task, metric in MAIN.items():
            c = _row(comps, task=task, method="gair/inr/linear", baseline=base, metric=metric)
            if c and c["diff_ci_low"] > 0:
                wins.append(task)
        out[f"INR beats {base.split('/')[0]} on >= 4 of 5 tasks (paired 95% CI > 0)"] = (
            len(wins) >= 4,
            f"{len(wins)}/5: {', '.join(wins)}",
        )
    for task in ("elevation_m", "population"):
        r = _row(
            rows,
            task=task,
            method="gair",
            input="inr",
            probe="linear",
            metric="skill",
            split="test",
        )
        out[f"INR {task} skill > 0.3"] = (
            bool(r and r["mean"] > 0.3),
            f"{r['mean']:.3f}" if r else "missing",
        )
    for task, floor in (("koppen", 0.80), ("continent", 0.90)):
        r = _row(rows, task=task, method="gair-heads", metric="accuracy", split="test")
        out[f"app heads: {task} accuracy >= {floor:.2f} on held-out land"] = (
            bool(r and r["mean"] >= floor),
            f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r else "missing",
        )
    # the panel's own rule (input "query", its weight chosen on val); older files: the INR alone
    nsv = "nearest-street-view"
    g = _row(rows, task=nsv, method="gair", input="query", metric="median_km", split="test")
    g = g or _row(rows, task=nsv, method="gair", metric="median_km", split="test")
    b = _row(rows, task=nsv, method="random-view", metric="median_km", split="test")
    masked = _row(rows, task=f"{nsv}-no-signs", method="gair", metric="median_km", split="test")
    out["nearest street view: median km <= 1/3 of a random view's"] = (
        bool(g and b and g["mean"] <= b["mean"] / 3),
        (f"{g['mean']:.0f} vs {b['mean']:.0f} km" if g and b else "missing")
        + (f"; signs masked: {masked['mean']:.0f} km" if masked else ""),
    )
    # against the flat-score answer under the primary answer's own prior (gallery or area)
    primary = result.get("decisions", {}).get("geolocation_primary_answer", {}).get("answer")
    prior = primary_prior(result)
    better = []
    for cont in INHABITED:
        grp = f"continent={cont}"
        m = _row(rows, task="geolocation", method="gair", answer=primary, group=grp, split="test")
        p = _row(rows, task="geolocation", method=prior, group=grp, split="test")
        if m and p and m["mean"] * 2 <= p["mean"]:
            better.append(cont)
    out["geolocation: median km 2x better than its prior's answer on >= 5 of 6 continents"] = (
        len(better) >= 5,
        f"{len(better)}/6 vs {prior}: {', '.join(better)}",
    )
    return out


def main(argv: list[str]) -> int:
    results = {a: read_result(a) for a in argv}  # a run dir or an eval.json file
    missing = [a for a, r in results.items() if r is None]
    if missing:
        print(f"no eval.json in {', '.join(missing)}", file=sys.stderr)
        return 2
    checks = {a: check(r) for a, r in results.items()}
    claims = list(next(iter(checks.values())))
    names = [(Path(a).parent if Path(a).is_file() else Path(a)).name for a in argv]
    print("| claim | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(argv))
    ok = True
    for c in claims:
        cells = []
        for a in argv:
            holds, why = checks[a][c]
            ok &= holds
            cells.append(f"{'yes' if holds else 'NO'} ({why})")
        print(f"| {c} | " + " | ".join(cells) + " |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["checkpoints/demo"]))
