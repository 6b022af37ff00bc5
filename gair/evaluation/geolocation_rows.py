"""Geolocation rows of `gair eval` (the protocol is in `gair.evaluation.geolocation`).

For the val split (to decide the primary answer), the test split and the unseen region: one
rendered view per street-view place, with and without the roadside signs (the planted country
cue); GAIR and random-init answers against the gallery-prior, area-prior, random-entry and
country-oracle baselines; overall, per continent and by whether the place's country has training places.
"""

from __future__ import annotations

import logging

import numpy as np

from gair.evaluation import geolocation as G
from gair.evaluation import stats
from gair.evaluation.features import render_queries
from gair.world.splits import cells_of

log = logging.getLogger(__name__)

MAX_QUERIES = 1500
GALLERY_MAX = 30000
EXCLUDE_KM = 25.0


def split_places(world, split: str, seed: int, max_queries: int) -> np.ndarray:
    sv = world.streetviews
    ll = sv.loc[sv["split"] == split, ["lat", "lon"]].to_numpy(np.float64)
    if len(ll) > max_queries:
        ll = ll[np.sort(np.random.default_rng(seed).choice(len(ll), max_queries, replace=False))]
    return ll


def _score(err, blocks, n_boot, seed, metrics=None):
    """{metric: (point, lo, hi)}; the interval is NaN with fewer than 2 blocks."""
    out = {}
    for metric, fn in (metrics or G.error_metrics()).items():
        if len(set(blocks.tolist())) < 2:
            out[metric] = (fn(err), float("nan"), float("nan"))
        else:
            out[metric] = stats.block_bootstrap(fn, blocks, n_boot, seed, err=err)[:3]
    return out


def geolocation_eval(
    world,
    embedder,
    random_embedder,
    n_boot: int,
    seed: int,
    max_queries: int = MAX_QUERIES,
    gallery_max: int = GALLERY_MAX,
):
    """-> (rows, comparisons, decisions). At most `max_queries` places per split (seeded
    sample) and `gallery_max` gallery places (seeded sample of the eligible training places)."""
    res = int(world.manifest["splits"]["block_h3_res"])
    px = embedder.config["sv"]["img_size"]
    rows, comparisons, decisions = [], [], {}
    split_ll = {s: split_places(world, s, seed, max_queries) for s in ("val", "test", "unseen")}
    split_ll = {s: ll for s, ll in split_ll.items() if len(ll) >= 10}
    train_countries = set(
        world.labels(world.streetviews.query("split == 'train'")[["lat", "lon"]].to_numpy())[
            "country"
        ]
    )
    for split, queries in split_ll.items():
        gallery = G.train_gallery(world, queries, EXCLUDE_KM, gallery_max, seed)
        blocks = cells_of(queries[:, 0], queries[:, 1], res)
        lab = world.labels(queries)
        for signs in (True, False):
            if split == "val" and not signs:
                continue  # val only decides the primary answer, on the views as they are
            task = "geolocation" if signs else "geolocation-no-signs"
            views = render_queries(world, queries, px, seed=11, signs=signs)
            answers = {}
            for method, emb in (("gair", embedder), ("random-init", random_embedder)):
                found = G.answers(emb, emb.street_view(views), gallery, emb.location(gallery))
                answers.update({(method, k): v for k, v in found.items()})
            answers.update(
                {
                    (k, "baseline"): v
                    for k, v in G.baseline_answers(world, queries, gallery, seed).items()
                }
            )
            errs = {k: G.errors_km(v, queries) for k, v in answers.items()}
            if split == "val" and signs:
                med = {a: float(np.median(errs[("gair", a)])) for a in G.ANSWERS}
                decisions["geolocation_primary_answer"] = {
                    "answer": min(med, key=med.get),
                    "val_median_km": med,
                    "rule": "the answer with the lower median km on the val split, fixed before test",
                }
            if split == "val":
                continue
            primary = decisions.get("geolocation_primary_answer", {}).get(
                "answer", "posterior-median"
            )
            for (method, answer), err in errs.items():
                for metric, (p, lo, hi) in _score(err, blocks, n_boot, seed).items():
                    rows.append(
                        stats.row(
                            task,
                            method,
                            "street-view",
                            metric,
                            p,
                            lo,
                            hi,
                            len(err),
                            split,
                            answer=answer,
                            gallery=len(gallery),
                        )
                    )
            main = errs[("gair", primary)]
            # the baselines, and GAIR's other answers (what the choice on val bought)
            bases = ("gallery-prior", "area-prior", "random-entry", "country-oracle")
            others = [(b, "baseline") for b in bases]
            others += [("gair", a) for a in G.ANSWERS if a != primary]
            for key in others:
                base = key[0] if key[1] == "baseline" else f"gair/{key[1]}"
                for metric, fn in G.error_metrics().items():
                    d, lo, hi = stats.paired_difference(
                        lambda err, fn=fn: fn(err),
                        blocks,
                        {"err": main},
                        {"err": errs[key]},
                        n_boot,
                        seed,
                    )
                    comparisons.append(
                        stats.comparison(
                            task, f"gair/{primary}", base, metric, d, lo, hi, split=split
                        )
                    )
            # per continent and by country seen in training: median km of GAIR vs the prior
            groups = {
                f"continent={c}": lab["continent"] == c for c in sorted(set(lab["continent"])) if c
            }
            seen = np.isin(lab["country"], list(train_countries))
            groups["country seen in training"] = seen
            groups["country not seen in training"] = ~seen
            med = {"median_km": G.error_metrics()["median_km"]}
            for group, m in groups.items():
                if m.sum() < 10:
                    continue
                for method, answer in (
                    ("gair", primary),
                    ("gallery-prior", "baseline"),
                    ("area-prior", "baseline"),
                    ("country-oracle", "baseline"),
                ):
                    ((p, lo, hi),) = _score(
                        errs[(method, answer)][m], blocks[m], n_boot, seed, med
                    ).values()
                    rows.append(
                        stats.row(
                            task,
                            method,
                            "street-view",
                            "median_km",
                            p,
                            lo,
                            hi,
                            int(m.sum()),
                            split,
                            answer=answer,
                            group=group,
                        )
                    )
    return rows, comparisons, decisions
