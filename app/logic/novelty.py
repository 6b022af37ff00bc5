"""Is an uploaded photo like anything the gallery holds? A checkpoint trained on the demo
world's rendered views maps a real photo to some embedding all the same, and its "nearest
places" are then noise presented as an answer; this says so instead.

The yardstick, computed once per index (cached on `Resources`): for a sample of up to
SAMPLE gallery views, each one's best cosine similarity to the OTHER gallery views
(leave-one-out). A photo whose best gallery similarity is below the QUANTILE (1st
percentile) of that distribution is unlike every view the index holds.

A nearly uniform image (a grey card, a lens cap: pixel standard deviation below FLAT_STD) holds
nothing a place can be told from; it is flagged whatever its similarity (measured with the demo
checkpoint, grey and black images score 0.95-0.97 against the rendered gallery, above its 1st
percentile of 0.90, because the gallery holds plain views too).
"""

from __future__ import annotations

import numpy as np

SAMPLE = 2000
QUANTILE = 0.01
FLAT_STD = 6.0  # grey levels (0..255): below this a photo is nearly uniform, shows no place
BLOCK = 65536  # gallery rows per matmul block (memory stays bounded at any gallery size)


def gallery_floor(res) -> dict | None:
    """{"threshold", "quantile", "sample", "median"}: the QUANTILE of the gallery views'
    leave-one-out best similarities; None with fewer than 2 gallery views."""

    def build():
        vecs = res.index.sv_vectors
        n = len(vecs)
        if n < 2:
            return None
        picked = np.linspace(0, n - 1, min(n, SAMPLE)).round().astype(np.int64)
        picked = np.unique(picked)
        queries = np.asarray(vecs[picked], np.float32)  # [S, E]
        best = np.full(len(picked), -np.inf, np.float32)
        for start in range(0, n, BLOCK):
            block = np.asarray(vecs[start : start + BLOCK], np.float32)
            sims = queries @ block.T  # [S, B]
            own = picked[(picked >= start) & (picked < start + len(block))]
            if len(own):  # leave each sampled view out of its own neighbours
                rows = np.searchsorted(picked, own)
                sims[rows, own - start] = -np.inf
            np.maximum(best, sims.max(1), out=best)
        return {
            "threshold": float(np.quantile(best, QUANTILE)),
            "quantile": QUANTILE,
            "sample": int(len(picked)),
            "median": float(np.median(best)),
        }

    return res.cached("__gallery_floor__", build)


def assess(res, best_similarity: float | None, image=None) -> dict | None:
    """For a photo whose best gallery similarity is `best_similarity` (and its pixels `image`,
    uint8 [H, W, 3], when given): {"best", "threshold", "quantile", "sample", "flat",
    "out_of_distribution"}; None without a gallery yardstick."""
    floor = gallery_floor(res)
    if floor is None or best_similarity is None or not np.isfinite(best_similarity):
        return None
    flat = image is not None and float(np.asarray(image, np.float32).std()) < FLAT_STD
    return {
        "best": float(best_similarity),
        **floor,
        "flat": bool(flat),
        "out_of_distribution": bool(flat or best_similarity < floor["threshold"]),
    }


def message(novelty: dict) -> str:
    """The warning the search panel shows for an out-of-distribution photo."""
    if novelty.get("flat"):
        return (
            "This image is nearly uniform (no edges, colours or objects): no place can be told "
            "from it, so the places below are noise whatever their similarity "
            f"({novelty['best']:.2f})."
        )
    share = 100 * (1 - novelty["quantile"])
    return (
        "This photo is unlike every street view the index holds: best similarity "
        f"{novelty['best']:.2f}, while {share:.0f}% of gallery views have a neighbour above "
        f"{novelty['threshold']:.2f}. The places below are likely noise (the checkpoint has not "
        "seen photos like this one)."
    )
