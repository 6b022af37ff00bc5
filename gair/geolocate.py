"""Street view -> coordinates: the posterior geometric median over a gallery of places.

GAIR's SECL loss trains softmax_g(cos(s, e_g) / tau) over gallery locations g to be the
probability that view s was taken at g (GeoCLIP reads its GPS gallery the same way). Answering
the best-scoring gallery entry is that posterior's mode. The error of an answer is great-circle
km, and the point that minimises the expected km is the posterior's spherical geometric median:
when a view only says "somewhere in the USA", the mode is an arbitrary US town while the median
is the middle of the USA. tau is the model's own training temperature, so nothing here is tuned
on the places being scored.

The prior over places is the gallery's own density unless `prior` weights are given: a gallery of
street-view places is dense where photos are (the demo world's training places are 42% North
American, 3% African), and that density pulls every uncertain view towards it.
`area_prior(gallery_latlon)` gives each H3 cell that holds gallery places the same mass, so the
prior is (close to) uniform over the land the gallery covers, as the app's grid of equal-area
cells is (`index.search.GridIndex.locate_view`).

Shapes: query [Q, E], gallery_emb [G, E] (any scale: both are L2-normalised here),
gallery_latlon [G, 2] degrees; results [Q, 2] (lat, lon) degrees.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def latlon_to_xyz(latlon: torch.Tensor) -> torch.Tensor:
    """(..., 2) (lat, lon) degrees -> (..., 3) unit vectors."""
    lat, lon = torch.deg2rad(latlon[..., 0]), torch.deg2rad(latlon[..., 1])
    return torch.stack([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()], -1)


def xyz_to_latlon(xyz: torch.Tensor) -> torch.Tensor:
    """(..., 3) vectors (any length > 0) -> (..., 2) (lat, lon) degrees, lon in [-180, 180]."""
    xyz = xyz / xyz.norm(dim=-1, keepdim=True)
    lat = torch.rad2deg(torch.asin(xyz[..., 2].clamp(-1.0, 1.0)))
    return torch.stack([lat, torch.rad2deg(torch.atan2(xyz[..., 1], xyz[..., 0]))], -1)


def spherical_median(
    xyz: torch.Tensor, weights: torch.Tensor, iters: int = 200, tol: float = 1e-7
) -> torch.Tensor:
    """Weighted geometric medians on the unit sphere (Weiszfeld with great-circle distances):
    points xyz [K, 3] unit vectors, one weighting per query weights [Q, K] >= 0 -> [Q, 3] unit
    vectors.

    Starts at the normalised weighted mean; each step re-weights by 1 / angular distance. A
    query stops once its estimate moves less than `tol` (chord length; 1e-7 ~ 0.6 m), so the
    spread-out posteriors that converge slowly do not hold the others up.
    """
    x = weights @ xyz
    x = torch.where(x.norm(dim=-1, keepdim=True) < 1e-12, xyz[0], x)  # balanced round the globe
    x = x / x.norm(dim=-1, keepdim=True)
    active = torch.arange(x.shape[0], device=x.device)
    for _ in range(iters):
        if active.numel() == 0:
            break
        cur = x[active]
        w = weights[active] / torch.arccos((cur @ xyz.T).clamp(-1.0, 1.0)).clamp_min(1e-9)
        new = w @ xyz
        new = new / new.norm(dim=-1, keepdim=True)
        x[active] = new
        active = active[(new - cur).norm(dim=-1) >= tol]
    return x


def geographic_median(latlon, weights=None) -> np.ndarray:
    """(lat, lon) of the spherical geometric median of points [N, 2] (degrees): the single
    answer with the least total (`weights` [N] > 0: weighted) great-circle distance to them.
    With a gallery's prior weights it is the answer of a model whose scores are flat."""
    pts = latlon_to_xyz(torch.as_tensor(np.asarray(latlon, np.float64)))
    weights = torch.exp(_log_prior(weights, len(pts)))[None]
    return xyz_to_latlon(spherical_median(pts, weights))[0].numpy()


def _tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    x = np.asarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())  # e.g. a read-only memmap


@torch.no_grad()
def locate(
    query,
    gallery_emb,
    gallery_latlon,
    logit_scale: float,
    chunk: int = 256,
    prior=None,
) -> torch.Tensor:
    """Posterior geometric median of each query over the gallery: [Q, 2] (lat, lon) degrees.

    Args:
        logit_scale: 1 / tau, the model's training temperature (`GAIR.logit_scale()`).
        chunk: queries per batch (memory ~ a few chunk x G float64).
        prior: [G] positive weights of the gallery places (any scale), e.g. `area_prior`;
            None: every place equally likely (the gallery's density is the prior).
    """
    q = F.normalize(_tensor(query).float(), dim=-1)  # cosines in float32, the rest in float64
    g = F.normalize(_tensor(gallery_emb).to(q), dim=-1)
    ll = _tensor(gallery_latlon).to(dtype=torch.float64, device=q.device)
    if q.shape[-1] != g.shape[-1] or ll.shape != (g.shape[0], 2):
        raise ValueError(
            f"locate: query [Q, E] {tuple(q.shape)}, gallery_emb [G, E] {tuple(g.shape)} and "
            f"gallery_latlon [G, 2] {tuple(ll.shape)} do not match"
        )
    if not logit_scale > 0:
        raise ValueError(f"locate: logit_scale must be > 0, got {logit_scale!r}")
    log_prior = _log_prior(prior, g.shape[0]).to(device=q.device)
    xyz = latlon_to_xyz(ll)
    out = []
    for start in range(0, q.shape[0], chunk):
        logits = (q[start : start + chunk] @ g.T).double() * logit_scale + log_prior
        w = torch.softmax(logits, dim=1)
        out.append(spherical_median(xyz, w))
    return xyz_to_latlon(torch.cat(out))


def _log_prior(prior, n: int) -> torch.Tensor:
    """log of [n] positive prior weights, normalised to sum 1 (zeros [n] when None)."""
    if prior is None:
        return torch.zeros(n, dtype=torch.float64)
    p = _tensor(prior).to(torch.float64).reshape(-1)
    if p.shape[0] != n or not bool(torch.isfinite(p).all()) or not bool((p > 0).all()):
        raise ValueError(
            f"locate: prior must be {n} finite positive weights (one per gallery place), "
            f"got shape {tuple(p.shape)}"
        )
    return torch.log(p / p.sum())


def area_prior(latlon) -> np.ndarray:
    """Prior weights [G] (sum 1) of gallery places [G, 2] (degrees) that give each H3 cell
    holding places the same total mass (`gair.spread.cell_weights`)."""
    from gair.spread import cell_weights

    return cell_weights(latlon)
