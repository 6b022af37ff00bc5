"""The val-split evidence behind `gair.spread.SPREAD_H3_RES` (run once; the test split is not
read): how the H3 resolution of the area weighting changes
- geolocation: median km of the posterior median on the train-only gallery, with the gallery's
  density as the prior ("gallery") or each cell of resolution r equally likely, and
- the nearest street view: median km of the first view for the app's query (its location
  weight the best on val for that gallery), with a plain random gallery ("uniform") or one
  spread over cells of resolution r.

    .venv/bin/python scripts/spread_resolution_on_val.py [RUN_DIR] [WORLD_DIR]
"""

from __future__ import annotations

import sys

import numpy as np

from gair.embed import Embedder
from gair.evaluation import geolocation as G
from gair.evaluation.crossview import GALLERY_SIZE, first_view_km
from gair.evaluation.features import render_queries
from gair.evaluation.geolocation_rows import EXCLUDE_KM, GALLERY_MAX, MAX_QUERIES, split_places
from gair.evaluation.points import eval_points
from gair.geolocate import locate
from gair.place_query import WEIGHTS, place_query
from gair.spread import cell_weights, spread_choice
from gair.world.world import World

RESOLUTIONS = (0, 1, 2, 3)


def geolocation_on_val(world, emb) -> dict:
    queries = split_places(world, "val", 0, MAX_QUERIES)
    gallery = G.train_gallery(world, queries, EXCLUDE_KM, GALLERY_MAX, 0)
    views = render_queries(world, queries, emb.config["sv"]["img_size"], seed=11)
    sv, loc = emb.street_view(views), emb.location(gallery)
    out = {}
    for res in (None, *RESOLUTIONS):
        prior = None if res is None else cell_weights(gallery, res)
        answer = locate(sv, loc, gallery, emb.logit_scale, prior=prior).numpy()
        out["gallery" if res is None else f"h3 res {res}"] = float(
            np.median(G.errors_km(answer, queries))
        )
    return out


def nearest_view_on_val(world, emb) -> dict:
    val = eval_points(world, n_land=12000, n_train=5000, n_unseen=800, seed=0)["val"]["latlon"]
    inr, loc = emb.point(val), emb.location(val)
    places = world.streetviews[["lat", "lon"]].to_numpy(np.float64)
    galleries = {
        "uniform": np.sort(
            np.random.default_rng(0).choice(len(places), GALLERY_SIZE, replace=False)
        )
    }
    galleries |= {
        f"h3 res {r}": spread_choice(places, GALLERY_SIZE, np.random.default_rng(0), r)
        for r in RESOLUTIONS
    }
    out = {}
    for name, rows in galleries.items():
        gallery = places[rows]
        sv = emb.street_view(render_queries(world, gallery, emb.config["sv"]["img_size"], seed=13))
        out[name] = min(
            float(np.median(first_view_km(place_query(inr, loc, w), sv, gallery, val)))
            for w in WEIGHTS
        )
    return out


def main(run: str = "checkpoints/demo", world_dir: str = "data/world") -> None:
    world = World.open(world_dir)
    emb = Embedder(run, world)
    for title, fn in (
        ("geolocation, posterior median km on val", geolocation_on_val),
        ("nearest street view, median km of the first view on val", nearest_view_on_val),
    ):
        print(title)
        for name, km in fn(world, emb).items():
            print(f"  {name:10s} {km:7.0f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
