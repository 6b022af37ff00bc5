"""Validation metrics: cross-view retrieval recall and geolocation error.

- Retrieval: query i's positive is key i (SV view i <-> the RS-INR embedding at its location);
  cosine on L2-normalised embeddings; R@k = share of queries whose positive ranks in the top k.
  Chance R@k = k / number of candidates.
- Geolocation: each SV embedding picks the best-scoring coordinate of a gallery by cosine with
  the location embeddings; error = great-circle km to its true location. The gallery is the
  validation locations themselves (which place, among the held-out ones, is this view from?);
  optionally a second number with training locations added to the gallery (harder: the
  held-out regions compete with the whole training world), and a third with the training
  locations alone (the answer can only be a training place, at least the split buffer away).
- Two answers per view and gallery: the best-scoring entry (`loc_median_km*`, the posterior's
  mode) and the posterior's geometric median at the model's training temperature
  (`loc_posterior_median_km*`, `gair.geolocate.locate`: the answer that minimises the expected
  km, and the one the product gives). The quality bar uses the product's answer.
- Baseline: always answer the training set's geographic median point (the point on the sphere
  minimising the sum of great-circle distances to the training locations).
- A gallery of held-out locations alone tells the model where the held-out regions are: even a
  uniformly random pick from it beats the baseline. Its median error is logged beside it
  (`heldout_pick_median_km`). Held-out coordinates beside training ones still attract answers
  (their location embeddings were never trained), so the quality bar uses the gallery of
  training locations alone whenever it exists: an answer can be anywhere the training world
  is, and nothing in the gallery marks the held-out regions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gair.geo import haversine_km
from gair.geolocate import geographic_median, locate

__all__ = ["geographic_median"]  # re-exported: the baseline point


@torch.no_grad()
def retrieval_recall(
    query: torch.Tensor, keys: torch.Tensor, ks=(1, 10), chunk: int = 4096
) -> dict[int, float]:
    """R@k of query[i] -> keys (positive keys[i]); ties are counted against the positive."""
    q, k = F.normalize(query.float(), dim=-1), F.normalize(keys.float(), dim=-1)
    ranks = []
    for start in range(0, q.shape[0], chunk):
        sims = q[start : start + chunk] @ k.T  # [c, N]
        pos = sims[torch.arange(sims.shape[0]), torch.arange(start, start + sims.shape[0])]
        ranks.append((sims >= pos[:, None]).sum(1) - 1)  # keys scoring at least the positive
    rank = torch.cat(ranks)
    return {kk: float((rank < kk).float().mean()) for kk in ks}


@torch.no_grad()
def best_locations(
    query: torch.Tensor, gallery_emb: torch.Tensor, gallery_latlon: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """For each query embedding, the gallery coordinate with the highest cosine: [Q, 2]."""
    q, g = F.normalize(query.float(), dim=-1), F.normalize(gallery_emb.float(), dim=-1)
    best = torch.cat([(q[s : s + chunk] @ g.T).argmax(1) for s in range(0, q.shape[0], chunk)])
    return gallery_latlon[best.to(gallery_latlon.device)]


def random_pick_median_km(gallery_latlon, true_latlon) -> float:
    """Median error of answering a uniformly random gallery entry: the median of all
    query-to-gallery great-circle distances [Q x G] (exact, no sampling)."""
    gallery = torch.as_tensor(gallery_latlon, dtype=torch.float64)
    true = torch.as_tensor(true_latlon, dtype=torch.float64)
    dists = haversine_km(
        true[:, None, :].expand(-1, len(gallery), -1), gallery[None].expand(len(true), -1, -1)
    )
    return float(dists.flatten().median())


def median_km(pred_latlon, true_latlon) -> float:
    """Median great-circle error in km between predicted and true (lat, lon) arrays."""
    pred = torch.as_tensor(pred_latlon, dtype=torch.float64)
    true = torch.as_tensor(true_latlon, dtype=torch.float64)
    return float(haversine_km(pred.expand_as(true), true).median())


@torch.no_grad()
def validation_metrics(
    z: torch.Tensor,
    s: torch.Tensor,
    latlon: torch.Tensor,
    location_emb: torch.Tensor,
    baseline_latlon: np.ndarray | None,
    extra_emb: torch.Tensor | None = None,
    extra_latlon: torch.Tensor | None = None,
    logit_scale: float | None = None,
) -> dict[str, float]:
    """All validation numbers from the RS-INR (z), projected SV (s) embeddings [N, E], their
    true locations [N, 2] and those locations' embeddings [N, E] (the gallery); optionally more
    gallery entries (training locations) `extra_emb` [M, E] at `extra_latlon` [M, 2]. With the
    model's `logit_scale` (1 / tau) the posterior-median answers are scored too."""
    n = z.shape[0]
    sv2rs = retrieval_recall(s, z)
    rs2sv = retrieval_recall(z, s)
    truth = latlon.cpu()
    out = {
        "val/n": float(n),
        "val/r1": sv2rs[1],
        "val/r10": sv2rs[10],
        "val/r1_rs2sv": rs2sv[1],
        "val/r10_rs2sv": rs2sv[10],
        "val/chance_r10": min(1.0, 10.0 / n),
        "val/loc_median_km": median_km(best_locations(s, location_emb, latlon).cpu(), truth),
        "val/gallery": float(n),
        "val/heldout_pick_median_km": random_pick_median_km(truth, truth),
    }
    base = None
    if baseline_latlon is not None:
        base = median_km(torch.as_tensor(baseline_latlon)[None], truth)
        out["val/baseline_median_km"] = base
        out["val/loc_gain"] = base / max(out["val/loc_median_km"], 1e-6)
    if extra_emb is not None and len(extra_emb):
        gallery = torch.cat([latlon, extra_latlon.to(latlon)])
        pred = best_locations(s, torch.cat([location_emb, extra_emb]), gallery)
        out["val/loc_median_km_with_train"] = median_km(pred.cpu(), truth)
        out["val/gallery_with_train"] = float(gallery.shape[0])
        only = best_locations(s, extra_emb, extra_latlon.to(latlon))  # no held-out place to pick
        out["val/loc_median_km_train_only"] = median_km(only.cpu(), truth)
        if base is not None:
            out["val/loc_gain_with_train"] = base / max(out["val/loc_median_km_with_train"], 1e-6)
            out["val/loc_gain_train_only"] = base / max(out["val/loc_median_km_train_only"], 1e-6)
    if logit_scale is not None:
        galleries = {"": (location_emb, latlon)}
        if extra_emb is not None and len(extra_emb):
            extra_latlon = extra_latlon.to(latlon)
            galleries["_with_train"] = (torch.cat([location_emb, extra_emb]), gallery)
            galleries["_train_only"] = (extra_emb, extra_latlon)
        for suffix, (emb, where) in galleries.items():
            pred = locate(s, emb, where, logit_scale)
            km = median_km(pred.cpu(), truth)
            out[f"val/loc_posterior_median_km{suffix}"] = km
            if base is not None:
                out[f"val/loc_posterior_gain{suffix}"] = base / max(km, 1e-6)
    return out


def quality_bar(metrics: dict[str, float]) -> dict:
    """The demo checkpoint's bar: R@10 >= 10x chance and median error >= 3x better than the
    geographic-median baseline, on the held-out val regions. The location gain is the one of
    the product's answer (the posterior median when scored, else the best entry) on the
    strictest gallery measured: training places only (nothing in it tells where the held-out
    regions are), else held-out + training places, else held-out places alone."""
    r10x = metrics["val/r10"] / max(metrics["val/chance_r10"], 1e-12)
    galleries = {"_train_only": "train", "_with_train": "heldout+train", "": "heldout"}
    answers = {"val/loc_posterior_gain": "posterior-median", "val/loc_gain": "best-entry"}
    key, gallery, answer = "val/loc_gain", "heldout", "best-entry"
    for prefix, name in answers.items():
        found = [s for s in galleries if prefix + s in metrics]
        if found:
            key, gallery, answer = prefix + found[0], galleries[found[0]], name
            break
    gain = metrics.get(key, float("nan"))
    return {
        "r10_over_chance": r10x,
        "loc_median_km": metrics.get(key.replace("_gain", "_median_km"), float("nan")),
        "loc_gain_over_median_baseline": gain,
        "loc_gallery": gallery,
        "loc_answer": answer,
        "met": bool(r10x >= 10.0 and gain >= 3.0),
    }
