"""Places spread evenly over the land they cover, whatever their density.

The demo world's street-view places, like real photo collections, crowd where people and roads
are (42% of its training places are North American, 3% African). Two things read better with
every region weighted by its area than by its crowd:
- the prior of "where was this view taken?" (`gair.geolocate.area_prior`), and
- the demo index's gallery of rendered views (`index.gallery.gallery_views`): a click in Africa
  should find African candidates among the nearest street views.

Both weigh each place by 1 / (places in its H3 cell), so every cell that holds places gets the
same total weight. Shapes: latlon [N, 2] degrees.
"""

from __future__ import annotations

import numpy as np

SPREAD_H3_RES = 2  # ~86,000 km2 cells (~300 km across); chosen on the val split (docs/TRAINING.md)


def cell_weights(latlon, h3_res: int = SPREAD_H3_RES) -> np.ndarray:
    """[N] weights (sum 1): each H3 cell (resolution `h3_res`) holding places gets the same
    total, shared equally by its places."""
    from gair.world.splits import cells_of

    latlon = np.asarray(latlon, np.float64).reshape(-1, 2)
    if len(latlon) == 0:
        return np.zeros(0)
    _, inverse, count = np.unique(
        cells_of(latlon[:, 0], latlon[:, 1], h3_res), return_inverse=True, return_counts=True
    )
    weights = 1.0 / count[inverse]
    return weights / weights.sum()


def spread_choice(
    latlon, size: int, rng: np.random.Generator, h3_res: int = SPREAD_H3_RES
) -> np.ndarray:
    """Sorted row positions of `size` distinct places drawn with `cell_weights`: sparse cells
    are taken first and whole; the rest comes from the crowded ones. All rows when size >= N."""
    n = len(latlon)
    if size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False, p=cell_weights(latlon, h3_res)))
