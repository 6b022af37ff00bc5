"""Spatially blocked splits that look like the world: many small held-out blocks.

Blocks are H3 resolution-2 cells (~320 km across, larger than a 213 km training chip). Each block
has two weights: its share of the world's street-view locations and its share of the land area.
Blocks are visited in the order of a seeded hash and given alternately to val and test (whichever
is further from its land target) until each holds its share of the land, skipping a block when
it would break one of these rules (in both weights):
  - a block is at most `max_block_share` (3%) of a split (dense photo blocks are thus rarely
    held out, so val/test hold fewer street views than land);
  - a resolution-0 parent at most `max_parent_share` (10%) of a split;
  - a country at most `max_country_share` (12%) of a split, and at most `max_country_heldout`
    (half) of a country held out in all;
  - blocks holding a pole are never held out (their outline cannot be rasterised).
One named region is held out whole as a stress test: `unseen_block` (H3 resolution 0, default the
Britain/France block that was once the test split). Its points are "unseen", reported apart.

Training never sees a held-out pixel: instead of a buffer ring, every training chip is placed so
that its read window is clear of the held-out blocks (`gair.world.heldout_mask`). A point in a
train block with no clear window of `chip_px` (32) px is "buffer"; only points in narrow gaps
between held-out blocks are.
"""

from __future__ import annotations

import hashlib

import numpy as np

from gair.world import heldout_mask

SPLITS = ("train", "val", "test", "unseen", "buffer")
HELDOUT = ("val", "test", "unseen")


def _hash01(seed: int, cell: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{cell}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def cells_of(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    import h3

    lat = np.asarray(lat, np.float64).ravel()
    lon = np.asarray(lon, np.float64).ravel()
    return np.array(
        [h3.latlng_to_cell(a, b, res) for a, b in zip(lat.tolist(), lon.tolist())], dtype=object
    ).astype(str)


class Splits:
    """Split lookup for arbitrary points, from the held-out blocks.

    heldout: {H3 cell id: "val" | "test" | "unseen"} (cells of any resolution; a point belongs
    to a block when its cell at that block's resolution is the block).
    chip_px: a train-block point is "train" when some chip of this size holding it is clear of
    every held-out block, else "buffer".
    """

    def __init__(self, heldout: dict[str, str], chip_px: int):
        import h3

        bad = {v for v in heldout.values()} - set(HELDOUT)
        if bad:
            raise ValueError(f"held-out blocks must be one of {HELDOUT}, got {sorted(bad)}")
        self.heldout = dict(heldout)
        self.chip_px = int(chip_px)
        self.resolutions = sorted({h3.get_resolution(c) for c in self.heldout})
        self._mask = None
        self._clear = {}

    @property
    def mask(self) -> np.ndarray:
        """Bool [HEIGHT, WIDTH] raster of the held-out blocks (built on first use, ~1 s)."""
        if self._mask is None:
            self._mask = heldout_mask.heldout_raster(self.heldout)
        return self._mask

    def clear(self, size_px: int) -> np.ndarray:
        """`heldout_mask.clear_windows` for chips of `size_px`, cached."""
        if size_px not in self._clear:
            self._clear[size_px] = heldout_mask.clear_windows(self.mask, size_px)
        return self._clear[size_px]

    def windows(self, latlon: np.ndarray, size_px: int) -> np.ndarray:
        """Bool [N, S, S]: each point's candidate chip windows that are clear of held-out blocks."""
        return heldout_mask.window_table(latlon, self.clear(size_px), size_px)

    def block_split(self, lat, lon) -> np.ndarray:
        """ "train" or the held-out split of the block holding each point (flat)."""
        split = np.full(np.asarray(lat).size, "train", dtype=object)
        for res in self.resolutions:
            cells = cells_of(lat, lon, res)
            for i, c in enumerate(cells.tolist()):
                if c in self.heldout:
                    split[i] = self.heldout[c]
        return split

    def split_of(self, lat, lon) -> np.ndarray:
        """ "train", "val", "test", "unseen" or "buffer" for each point (shape of lat)."""
        lat = np.asarray(lat, np.float64)
        lon = np.asarray(lon, np.float64)
        shape = lat.shape
        split = self.block_split(lat, lon)
        train = np.flatnonzero(split == "train")
        if len(train):
            ll = np.stack([lat.ravel()[train], lon.ravel()[train]], 1)
            usable = self.windows(ll, self.chip_px).any(axis=(1, 2))
            split[train[~usable]] = "buffer"
        return split.astype(str).reshape(shape)


def choose_heldout(
    blocks: np.ndarray,
    parents: np.ndarray,
    countries: np.ndarray,
    weights: np.ndarray,
    params: dict,
    exclude: set[str] = frozenset(),
) -> dict[str, str]:
    """Pick val/test blocks by the rules of the module docstring.

    blocks, parents, countries [n]: one row per sample point; weights [n, 2]: its share of the
    world's street views and of its land area (each column sums to 1). Every cap holds in both
    measures; a split is full when its land share reaches its target. -> {block: "val"|"test"}.
    """
    import pandas as pd

    df = pd.DataFrame({"block": blocks, "parent": parents, "country": countries})
    df["sv"], df["land"] = weights[:, 0], weights[:, 1]
    df = df[~df["block"].isin(exclude)]
    cols = ["sv", "land"]
    per_block = df.groupby("block")[cols].sum()
    per_country = df.groupby("country")[cols].sum()
    pieces = df.groupby(["block", "country"])[cols].sum()
    parent_of = df.groupby("block")["parent"].first()
    order = sorted(per_block.index, key=lambda b: _hash01(params["split_seed"], str(b)))
    # dense photo blocks break the block cap, so a split holds fewer street views than land:
    # the floor of the street-view caps is scaled down by the world's photo-to-land contrast
    fill_sv_ratio = float(params.get("sv_floor_ratio", 0.35))
    target = {"val": params["val_fraction"], "test": params["test_fraction"]}
    zero = np.zeros(2)
    fill = {s: zero.copy() for s in target}
    by_parent: dict[str, dict] = {s: {} for s in target}
    by_country: dict[str, dict] = {s: {} for s in target}
    heldout_country: dict[str, np.ndarray] = {}
    chosen: dict[str, str] = {}
    for block in order:
        if heldout_mask.contains_pole(block):
            continue
        w = per_block.loc[block].to_numpy()
        piece = pieces.loc[block]
        for split in sorted(target, key=lambda s: fill[s][1] / target[s]):
            t = target[split]
            if fill[split][1] >= t:
                continue
            # caps are shares of what the split will hold: of its fill with this block, but
            # never less than a quarter of its target (so the first blocks can go in)
            size = np.maximum(fill[split] + w, 0.25 * t * np.array([fill_sv_ratio, 1.0]))
            if (w > params["max_block_share"] * size).any():
                continue
            parent = parent_of[block]
            if (by_parent[split].get(parent, zero) + w > params["max_parent_share"] * size).any():
                continue
            if any(
                c
                and (
                    (by_country[split].get(c, zero) + cw > params["max_country_share"] * size).any()
                    or (
                        heldout_country.get(c, zero) + cw
                        > params["max_country_heldout"] * per_country.loc[c].to_numpy() + 1e-12
                    ).any()
                )
                for c, cw in ((c, row.to_numpy()) for c, row in piece.iterrows())
            ):
                continue
            chosen[str(block)] = split
            fill[split] = fill[split] + w
            by_parent[split][parent] = by_parent[split].get(parent, zero) + w
            for c, row in piece.iterrows():
                by_country[split][c] = by_country[split].get(c, zero) + row.to_numpy()
                heldout_country[c] = heldout_country.get(c, zero) + row.to_numpy()
            break
        if all(fill[s][1] >= target[s] for s in target):
            break
    return chosen


def _land_points(land: np.ndarray, step: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every `step`-th land pixel centre with its area weight (cos latitude)."""
    from gair.world import grid

    rows = np.arange(0, grid.HEIGHT, step)
    cols = np.arange(0, grid.WIDTH, step)
    sub = land[np.ix_(rows, cols)]
    r, c = np.nonzero(sub)
    lat = grid.row_lat(rows[r])
    lon = grid.col_lon(cols[c])
    return lat, lon, np.cos(np.deg2rad(lat))


def assign_splits(sv, params: dict, land: np.ndarray, country_of):
    """-> (manifest entry, split per location, block per location).

    sv: DataFrame with lat, lon; land: the world's bool land raster; country_of(lat, lon) -> ISO
    code per point ("" for none).
    """
    import h3

    res = params["block_h3_res"]
    sv_lat, sv_lon = sv["lat"].to_numpy(), sv["lon"].to_numpy()
    land_lat, land_lon, land_w = _land_points(land)
    lat = np.concatenate([sv_lat, land_lat])
    lon = np.concatenate([sv_lon, land_lon])
    weights = np.zeros((len(lat), 2))
    weights[: len(sv_lat), 0] = 1.0 / len(sv_lat)
    weights[len(sv_lat) :, 1] = land_w / land_w.sum()
    blocks = cells_of(lat, lon, res)
    parent_of = {b: h3.cell_to_parent(b, 0) for b in set(blocks.tolist())}
    parents = np.array([parent_of[b] for b in blocks.tolist()])
    # blocks that touch the unseen region (H3 children do not nest exactly in their parents)
    in_unseen = cells_of(lat, lon, 0) == params["unseen_block"]
    unseen = set(blocks[in_unseen].tolist()) | {
        b for b, p in parent_of.items() if p == params["unseen_block"]
    }
    heldout = choose_heldout(blocks, parents, country_of(lat, lon), weights, params, exclude=unseen)
    heldout[params["unseen_block"]] = "unseen"
    splits = Splits(heldout, params["train_chip_px"])
    split = splits.split_of(sv_lat, sv_lon)
    land_split = splits.split_of(land_lat, land_lon)
    land_share = {s: round(float(land_w[land_split == s].sum() / land_w.sum()), 4) for s in SPLITS}
    info = {
        "scheme": (
            f"H3 resolution {res} blocks in seeded-hash order, alternating val/test until each "
            "holds its share of the land; every cap holds both in street views and in land "
            "area; one whole resolution-0 region held out as 'unseen'"
        ),
        "block_h3_res": res,
        "seed": params["split_seed"],
        "targets": {"val": params["val_fraction"], "test": params["test_fraction"]},
        "caps": {
            k: params[k]
            for k in (
                "max_block_share",
                "max_parent_share",
                "max_country_share",
                "max_country_heldout",
            )
        },
        "unseen_block": params["unseen_block"],
        "chip_px": params["train_chip_px"],
        "buffer_rule": (
            "a train-block point is 'buffer' when no chip of chip_px px holding it is clear of "
            "every held-out block; training chips are placed only in clear windows"
        ),
        "land_area_share": land_share,
        "heldout_blocks": heldout,
    }
    return info, split, cells_of(sv_lat, sv_lon, res)
