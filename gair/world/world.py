"""`World`: read access to a built demo world (chips, labels, street views, splits, views)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gair.geo import validate_latlon, wrap_lon
from gair.world import grid
from gair.world.manifest import DEFAULT_WORLD_DIR, LAYER_FILES, check_complete

KOPPEN_CLASSES = ["none", "A", "B", "C", "D", "E"]  # index = label value
IGBP_CLASSES = [
    "water",
    "evergreen needleleaf forest",
    "evergreen broadleaf forest",
    "deciduous needleleaf forest",
    "deciduous broadleaf forest",
    "mixed forest",
    "closed shrubland",
    "open shrubland",
    "woody savanna",
    "savanna",
    "grassland",
    "permanent wetland",
    "cropland",
    "urban and built-up",
    "cropland/natural vegetation mosaic",
    "snow and ice",
    "barren",
]
LABELS = ("koppen", "landcover", "elevation_m", "population", "continent", "country", "is_land")


class WorldNotFoundError(FileNotFoundError):
    pass


def _as_offsets(offsets, n: int) -> np.ndarray:
    if offsets is None:
        return np.zeros((n, 2), np.float64)
    try:
        off = np.asarray(offsets, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"offset is not numeric: {offsets!r}") from err
    off = np.broadcast_to(off.reshape(-1, 2) if off.size == 2 else off, (n, 2))
    bad = ~np.isfinite(off) | (np.abs(off) > 1.0)
    if bad.any():
        i = np.argwhere(bad)[0]
        raise ValueError(
            f"offset must be chip coordinates (x, y) in [-1, 1], got {off[i[0]].tolist()!r}"
        )
    return off


class World:
    """The embedded demo world. Open with `World.open(path)`.

    Rasters are memory-mapped (cheap to open; DataLoader workers share the pages); pickling a
    World pickles only its path. As an RS source (gair.sources) it is the "world" kind: global,
    tiled, with ground-truth labels.
    """

    kind = "world"
    has_labels = True
    tiled = True
    bounds4326 = (-180.0, -90.0, 180.0, 90.0)

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self.fingerprint: str = manifest["fingerprint"]
        self.bands: list[str] = list(manifest["bands"])
        layers = {}
        for name, fname in LAYER_FILES.items():
            # plain ndarray views of the memory maps (memmap indexing has extra overhead)
            layers[name] = np.asarray(np.load(self.path / fname, mmap_mode="r", allow_pickle=False))
        self.rs = layers["rs"]  # uint8 [C, H, W]
        self._rs_flat = self.rs.reshape(self.rs.shape[0], -1)
        self.koppen = layers["koppen"]
        self.landcover = layers["landcover"]
        self.elevation = layers["elevation"]
        self.population_u8 = layers["population"]
        self.population_scale = float(manifest["layers"]["population"]["scale"])
        self.country = layers["country"]
        self.land = np.unpackbits(np.asarray(layers["land"]), axis=1, count=grid.WIDTH).astype(bool)
        # flat views for np.take (much faster than 2-D fancy indexing)
        self._land_flat = self.land.reshape(-1)
        self._lc_flat = self.landcover.reshape(-1)
        self._kg_flat = self.koppen.reshape(-1)
        self._pop_flat = self.population_u8.reshape(-1)
        self._country_flat = self.country.reshape(-1)
        self._elev_flat = self.elevation.reshape(-1)
        countries = manifest["countries"]
        self.country_iso = np.array([""] + [c["iso_a3"] for c in countries], dtype=object)
        self.country_name = np.array([""] + [c["name"] for c in countries], dtype=object)
        self.country_continent = np.array([""] + [c["continent"] for c in countries], dtype=object)
        # country index -> [(lon_min, lon_max, continent)]: parts of a country on another continent
        self.continent_parts = {
            k: [(float(lo), float(hi), str(name)) for lo, hi, name in c["continent_parts"]]
            for k, c in enumerate(countries, start=1)
            if c.get("continent_parts")
        }
        # roadside sign style per country index: [n + 1, 3] (top, bottom, post colour; -1: none)
        self.sign_style = np.array([(-1, -1, -1)] + [c["sign"] for c in countries], np.int64)
        self._streetviews = None
        self._splits = None
        self._render_cache: dict = {}

    # ------------------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | Path = DEFAULT_WORLD_DIR) -> World:
        path = Path(path)
        manifest, why = check_complete(path)
        if manifest is None:
            raise WorldNotFoundError(
                f"no complete demo world at {path}: {why}. Build it with "
                f"`gair world build --out {path}` (or `make world`)"
            )
        return cls(path, manifest)

    def __getstate__(self):
        return {"path": str(self.path)}

    def __setstate__(self, state):
        other = World.open(state["path"])
        self.__dict__.update(other.__dict__)

    def __repr__(self) -> str:
        return f"World({str(self.path)!r}, fingerprint={self.fingerprint!r})"

    # -------------------------------------------------------------------------------- props

    @property
    def streetviews(self):
        """DataFrame: id, lat, lon, split (train/val/test/unseen/buffer), source, block."""
        if self._streetviews is None:
            import pandas as pd

            self._streetviews = pd.read_parquet(self.path / self.manifest["streetviews"]["file"])
        return self._streetviews

    @property
    def splits(self):
        if self._splits is None:
            from gair.world.splits import Splits

            info = self.manifest["splits"]
            self._splits = Splits(info["heldout_blocks"], info["chip_px"])
        return self._splits

    def split_of(self, latlon) -> np.ndarray:
        """Split of arbitrary points: "train", "val", "test", "unseen" (the stress-test region) or
        "buffer" (train-block points no training chip can hold without showing a held-out block).
        latlon (..., 2) -> str array (...)."""
        ll = validate_latlon(latlon)
        return self.splits.split_of(ll[..., 0], ll[..., 1])

    def describe(self) -> dict:
        return {"kind": self.kind, "bands": self.bands}

    def info(self) -> dict:
        m = self.manifest
        return {
            "path": str(self.path),
            "format_version": m["format_version"],
            "fingerprint": m["fingerprint"],
            "created": m.get("created"),
            "build_seconds": m.get("build_seconds"),
            "size_bytes": m.get("size_bytes"),
            "grid": m["grid"],
            "bands": m["bands"],
            "layers": {
                k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in m["layers"].items()
            },
            "streetviews": {k: v for k, v in m["streetviews"].items() if k not in ("sha256",)},
            "splits": {k: v for k, v in m["splits"].items() if k != "heldout_blocks"}
            | {"heldout_blocks": len(m["splits"]["heldout_blocks"])},
            "sources": {
                k: f"{v['package']} {v['version']}: {v['file']}" for k, v in m["sources"].items()
            },
        }

    # -------------------------------------------------------------------------------- chips

    def chip(self, latlon, size_px: int, offset=None) -> tuple[np.ndarray, np.ndarray]:
        """RS chip around one point: (rs [C, S, S] float32 in [0, 1], rs_bbox [4] float64).

        The chip is a window of the global raster, S x S pixels of 1/15 degree. By default the
        point sits at the chip centre; `offset` = chip coordinates (x, y) in [-1, 1] puts it
        there instead. Longitudes wrap across the antimeridian; near the poles the window is
        shifted (clamped) to stay within [-90, 90], so there the point's position differs from
        the requested offset. In every case rs_bbox (west, south, east, north) is exactly the
        area the pixels cover: `gair.geo.to_chip_coords(latlon, rs_bbox)` is the point's
        true position in the chip.
        """
        ll = validate_latlon(latlon)
        if ll.shape != (2,):
            raise ValueError(
                f"chip() takes one (lat, lon) point, got shape {ll.shape}; use chips()"
            )
        rs, bbox = self.chips(ll[None], size_px, None if offset is None else [offset])
        return rs[0], bbox[0]

    def chips(self, latlon, size_px: int, offsets=None) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised `chip`: latlon [N, 2] -> (rs [N, C, S, S] float32, rs_bbox [N, 4])."""
        ll = validate_latlon(latlon).reshape(-1, 2)
        if isinstance(size_px, bool) or not isinstance(size_px, int | np.integer):
            raise ValueError(f"size_px must be a positive integer, got {size_px!r}")
        size = int(size_px)
        if not 1 <= size <= grid.HEIGHT:
            raise ValueError(f"size_px must be in [1, {grid.HEIGHT}], got {size_px!r}")
        n = len(ll)
        off = _as_offsets(offsets, n)
        p = grid.DEG_PER_PX
        ext = size * p
        lat, lon = ll[:, 0], ll[:, 1]
        north = lat + (off[:, 1] + 1.0) / 2.0 * ext
        north = np.clip(north, -90.0 + ext, 90.0)  # clamp the window inside [-90, 90]
        south = north - ext
        west = lon - (off[:, 0] + 1.0) / 2.0 * ext  # unwrapped
        # continuous global pixel coordinates of the chip's first pixel centre (pixel centres of
        # the global grid sit at integer coordinates here)
        row0 = (90.0 - north) / p
        col0 = (west + 180.0) / p
        r_base = np.floor(row0)
        c_base = np.floor(col0)
        fr = (row0 - r_base).astype(np.float32)
        fc = (col0 - c_base).astype(np.float32)
        steps = np.arange(size)
        # In coordinates where global pixel k's centre is at k, chip pixel i's centre is at
        # row0 + i: bilinear between rows floor(row0) + i and + 1 with the same weight fr for all i
        rows = r_base[:, None].astype(np.int64) + steps[None, :]  # [N, S] top neighbour row
        cols = c_base[:, None].astype(np.int64) + steps[None, :]
        r_a = np.clip(rows, 0, grid.HEIGHT - 1)[:, :, None] * grid.WIDTH
        r_b = np.clip(rows + 1, 0, grid.HEIGHT - 1)[:, :, None] * grid.WIDTH
        c_a = (cols % grid.WIDTH)[:, None, :]
        c_b = ((cols + 1) % grid.WIDTH)[:, None, :]
        flat = self._rs_flat  # [C, H*W]; np.take is much faster than fancy indexing here
        fr = fr.reshape(1, n, 1, 1)
        fc = fc.reshape(1, n, 1, 1)
        top = np.take(flat, r_a + c_a, axis=1).astype(np.float32)
        top += fc * (np.take(flat, r_a + c_b, axis=1) - top)
        bot = np.take(flat, r_b + c_a, axis=1).astype(np.float32)
        bot += fc * (np.take(flat, r_b + c_b, axis=1) - bot)
        top += fr * (bot - top)
        top *= np.float32(1.0 / 255.0)
        chips = np.ascontiguousarray(top.transpose(1, 0, 2, 3))  # [N, C, S, S]
        bbox = np.stack([wrap_lon(west), south, wrap_lon(west + ext), north], axis=1)
        return chips, bbox

    # ------------------------------------------------------------------------------- labels

    def _index(self, latlon) -> tuple[np.ndarray, np.ndarray, tuple]:
        ll = validate_latlon(latlon)
        shape = ll.shape[:-1]
        flat = ll.reshape(-1, 2)
        r, c = grid.nearest_index(flat[:, 0], flat[:, 1])
        return r, c, shape

    def labels(self, latlon) -> dict[str, np.ndarray]:
        """Labels at points: latlon (..., 2) -> dict of arrays shaped (...):
        koppen int (0 none, 1..5 = A..E), landcover int (IGBP 0..16), elevation_m float,
        population float (log10(1 + people within 50 km)), continent str (geographic: the
        country's, or its part's for a country on two, e.g. Siberia is Asia), country ISO-A3 str
        ("" for none), is_land bool."""
        r, c, shape = self._index(latlon)
        ci = np.asarray(self.country[r, c]).astype(np.int64)
        out = {
            "koppen": np.asarray(self.koppen[r, c]).astype(np.int64),
            "landcover": np.asarray(self.landcover[r, c]).astype(np.int64),
            "elevation_m": np.asarray(self.elevation[r, c]).astype(np.float32),
            "population": np.asarray(self.population_u8[r, c]).astype(np.float32)
            / np.float32(self.population_scale),
            "continent": self._continents(ci, c),
            "country": self.country_iso[ci].astype(str),
            "is_land": self.land[r, c],
        }
        return {k: v.reshape(shape) for k, v in out.items()}

    def _continents(self, ci: np.ndarray, col: np.ndarray) -> np.ndarray:
        """Continent names (str array like `ci`) of points in countries `ci` at grid columns
        `col`: the country's continent, or that of the country's part the longitude lies in."""
        out = self.country_continent[ci]  # a copy (fancy index): safe to overwrite
        for k, parts in self.continent_parts.items():
            here = np.flatnonzero(ci == k)
            lon = grid.col_lon(col[here])
            for lo, hi, name in parts:
                out[here[(lon >= lo) & (lon < hi)]] = name
        return out.astype(str)

    # ------------------------------------------------------------------------------- views

    def render_view(self, latlon, heading_deg: float, seed: int, size: int = 64) -> np.ndarray:
        """Ground-level perspective view (uint8 [size, size, 3]) at a point looking towards
        `heading_deg` (0 = north, 90 = east). Deterministic in (latlon, heading, seed, size)."""
        ll = validate_latlon(latlon)
        if ll.shape != (2,):
            raise ValueError(f"render_view() takes one (lat, lon) point, got shape {ll.shape}")
        try:
            heading, seed = float(heading_deg), int(seed)
        except (TypeError, ValueError) as err:
            raise ValueError(f"heading_deg and seed must be numbers: {err}") from err
        return self.render_views(ll[None], heading, seed, size)[0]

    def render_views(
        self, latlon, heading_deg, seed, size: int = 64, signs: bool = True
    ) -> np.ndarray:
        """Many views at once (vectorised; much faster per view than `render_view`):
        latlon [N, 2], heading_deg and seed scalars or [N] -> uint8 [N, size, size, 3].
        Row i equals render_view(latlon[i], heading_deg[i], seed[i], size). `signs=False`
        renders the same views without the roadside signs (the planted country cue)."""
        from gair.world.render import render_views

        ll = validate_latlon(latlon).reshape(-1, 2)
        n = len(ll)
        try:
            headings = np.broadcast_to(np.asarray(heading_deg, np.float64), (n,))
            seeds = np.broadcast_to(np.asarray(seed, np.int64), (n,))
        except (TypeError, ValueError) as err:
            raise ValueError(f"heading_deg/seed must be numbers or [N] arrays: {err}") from err
        if not np.isfinite(headings).all():
            raise ValueError(f"heading_deg must be finite, got {heading_deg!r}")
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 8:
            raise ValueError(f"view size must be an integer >= 8, got {size!r}")
        if n == 0:
            return np.zeros((0, size, size, 3), np.uint8)
        return render_views(self, ll[:, 0], ll[:, 1], headings, seeds, int(size), bool(signs))


def world_info(path: str | Path) -> dict:
    """Manifest summary without opening the rasters."""
    manifest, why = check_complete(path)
    if manifest is None:
        raise WorldNotFoundError(
            f"no complete demo world at {path}: {why}. Build it with `gair world build --out {path}`"
        )
    return json.loads(json.dumps(manifest))
