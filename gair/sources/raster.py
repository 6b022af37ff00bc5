"""An RS source over the user's own rasters: GeoTIFF/COG/VRT/JP2 files in any CRS, one file per
scene or one per band, or a local STAC item collection (`gair.sources.scenes`).

A chip around a centre (lat, lon) is a ground square: `chip_km` x `chip_km` in a transverse
Mercator projection centred on the point (north up, metric, no grid convergence at its centre),
`read_px` x `read_px` pixels. Each scene is warped onto that grid through a `WarpedVRT` (bilinear,
nodata-aware) and the scenes are mosaicked on the fly: the first scene that covers a pixel wins.
The chip's `rs_bbox` (west, south, east, north) is where its edges' midpoints lie in degrees, so
`gair.geo.to_chip_coords` maps a point to its pixel.

Coverage is explicit: `chips_with_coverage` returns each chip's valid-pixel mask. The Embedder
drops points whose chips cover less than `min_coverage` or that lie on a pixel without data
(`gair.sources.NotCoveredError`); a partly covered chip above that share gets its missing pixels
filled with the chip's own per-band mean, never with zero.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from gair.data.rasters import KM_PER_DEG
from gair.sources.scenes import Scene, is_stac, scan_files, scan_stac

DEFAULT_MIN_COVERAGE = 0.9
RGB_BANDS = ("B4", "B3", "B2")
_OPEN_FILES = 64  # open dataset handles kept per source


class RasterSource:
    """RS chips cut from raster files.

    Args:
        paths: files, folders or STAC JSON files (a str/Path or a list of them).
        bands: the bands to read, in the model's order (`config["rs"]["bands"]`).
        chip_km: the chip's ground side in km (the checkpoint's `rs_chip.km`).
        read_px: pixels across a chip as read (the checkpoint's `rs_chip.source_px`, else
            `rs_chip.px`); preprocessing resizes chips to the model's size.
        model_px: the model's RS input size (sets the tiling's stride: half a chip).
        min_coverage: share of a chip's pixels that must hold data for its points to count.
    """

    kind = "rasters"
    has_labels = False
    tiled = True

    def __init__(
        self,
        paths,
        bands: list[str],
        chip_km: float,
        read_px: int,
        model_px: int,
        min_coverage: float = DEFAULT_MIN_COVERAGE,
    ):
        if not 0.0 < float(min_coverage) <= 1.0:
            raise ValueError(f"--min-coverage must be in (0, 1], got {min_coverage!r}")
        paths = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
        if not paths:
            raise ValueError("a raster source needs at least one file or folder")
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(f"raster source {path} does not exist")
        self.paths = [p.resolve() for p in paths]
        self.bands = list(bands)
        self.chip_km, self.read_px, self.min_coverage = float(chip_km), int(read_px), min_coverage
        self.scenes, self.skipped = self._scan()
        if not self.scenes:
            why = "; ".join(f"{k}: {v}" for k, v in list(self.skipped.items())[:3])
            raise ValueError(
                f"no usable imagery in {', '.join(map(str, paths))} for bands {self.bands}"
                + (f" ({why})" if why else " (no .tif/.tiff/.vrt/.jp2 files found)")
            )
        self._meta = [self._scene_meta(s) for s in self.scenes]
        self.scene_bounds = np.array([m["bounds"] for m in self._meta], np.float64)
        w, s = self.scene_bounds[:, 0].min(), self.scene_bounds[:, 1].min()
        e, n = self.scene_bounds[:, 2].max(), self.scene_bounds[:, 3].max()
        self.bounds4326 = (float(w), float(s), float(e), float(n))
        self.gsd_m = float(min(m["gsd_m"] for m in self._meta))
        # the degree tiling (gair.embed.Tiling): stride = half a chip's north-south side
        half = model_px // 2
        self.width_px = half * math.ceil(360.0 / (self.chip_km / KM_PER_DEG / 2.0))
        self.fingerprint = self._fingerprint()
        self._handles: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._stretch = None

    # -- opening ------------------------------------------------------------------------------
    def _scan(self) -> tuple[list[Scene], dict[str, str]]:
        scenes, skipped = [], {}
        for path in self.paths:
            found, why = (
                scan_stac(path, self.bands) if is_stac(path) else scan_files([path], self.bands)
            )
            scenes += found
            skipped.update(why)
        return scenes, skipped

    def _scene_meta(self, scene: Scene) -> dict:
        """EPSG:4326 bounds (densified edges) and ground sample distance of a scene."""
        import rasterio
        from rasterio.warp import transform_bounds

        bounds, gsd = [], []
        for path in scene.files():
            with rasterio.open(path) as ds:
                bounds.append(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21))
                res = abs(ds.res[0])
                gsd.append(res * (KM_PER_DEG * 1000.0) if ds.crs.is_geographic else res)
        b = np.array(bounds)
        return {
            "bounds": (b[:, 0].max(), b[:, 1].max(), b[:, 2].min(), b[:, 3].min()),
            "gsd_m": min(gsd),
        }

    def _fingerprint(self) -> str:
        h = hashlib.sha256()
        for scene in self.scenes:
            for band, ref in sorted(scene.bands.items()):
                st = Path(ref.path).stat() if Path(ref.path).exists() else None
                h.update(f"{band}|{ref.path}|{ref.index}|{ref.dn_offset}|".encode())
                h.update(f"{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
        h.update(f"{self.chip_km}|{self.read_px}|{self.min_coverage}".encode())
        return "rasters-" + h.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "scenes": len(self.scenes),
            "skipped_files": len(self.skipped),
            "bands": self.bands,
            "chip_km": self.chip_km,
            "read_px": self.read_px,
            "min_coverage": self.min_coverage,
            "gsd_m": round(self.gsd_m, 3),
        }

    @property
    def native_zoom(self) -> int:
        """The Web Mercator zoom whose pixels match the imagery's ground resolution."""
        lat = math.radians((self.bounds4326[1] + self.bounds4326[3]) / 2.0)
        return int(min(22, max(0, math.ceil(math.log2(156543.034 * math.cos(lat) / self.gsd_m)))))

    def footprint(self):
        """The union of the scenes' footprints (shapely, EPSG:4326)."""
        import shapely

        return shapely.union_all([shapely.box(*b) for b in self.scene_bounds])

    def _dataset(self, path: str):
        import rasterio

        with self._lock:
            if path in self._handles:
                self._handles.move_to_end(path)
                return self._handles[path]
            ds = rasterio.open(path)
            self._handles[path] = ds
            while len(self._handles) > _OPEN_FILES:
                self._handles.popitem(last=False)[1].close()
            return ds

    # -- chips --------------------------------------------------------------------------------
    def chip_grid(self, lat: float, lon: float):
        """The chip around (lat, lon): (local CRS, affine transform, rs_bbox (W, S, E, N)).
        The bbox edges are the chip's edge midpoints: half a side along the geodesics due
        north, east, south and west of the centre (the projection's axes through its centre)."""
        from pyproj import Geod
        from rasterio.crs import CRS
        from rasterio.transform import from_origin

        crs = CRS.from_string(
            f"+proj=tmerc +lat_0={float(lat)!r} +lon_0={float(lon)!r} +k=1 +x_0=0 +y_0=0 "
            "+ellps=WGS84 +units=m +no_defs"
        )
        half = self.chip_km * 500.0
        lons, lats, _ = Geod(ellps="WGS84").fwd([lon] * 4, [lat] * 4, [270, 180, 90, 0], [half] * 4)
        bbox = (lons[0], lats[1], lons[2], lats[3])
        return crs, from_origin(-half, half, 2 * half / self.read_px, 2 * half / self.read_px), bbox

    def _warp(
        self, scene: Scene, crs, transform, size: int, bands
    ) -> tuple[np.ndarray, np.ndarray]:
        """One scene on a chip grid -> (values float32 [len(bands), size, size], valid [size, size])."""
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        out = np.zeros((len(bands), size, size), np.float32)
        valid = np.ones((size, size), bool)
        by_file: dict[str, list[int]] = {}
        for k, band in enumerate(bands):
            by_file.setdefault(scene.bands[band].path, []).append(k)
        for path, ks in by_file.items():
            ds = self._dataset(path)
            with (
                self._lock,
                WarpedVRT(
                    ds,
                    crs=crs,
                    transform=transform,
                    width=size,
                    height=size,
                    resampling=Resampling.bilinear,
                    src_nodata=ds.nodata if ds.nodata is not None else 0,
                    nodata=ds.nodata if ds.nodata is not None else 0,
                ) as vrt,
            ):
                idx = [scene.bands[bands[k]].index for k in ks]
                data = vrt.read(indexes=idx, masked=True)
            valid &= ~np.ma.getmaskarray(data).any(axis=0)
            for j, k in enumerate(ks):
                out[k] = data.data[j].astype(np.float32) + scene.bands[bands[k]].dn_offset
        return out, valid

    def _candidates(self, bbox) -> np.ndarray:
        b = self.scene_bounds
        hit = (b[:, 0] < bbox[2]) & (b[:, 2] > bbox[0]) & (b[:, 1] < bbox[3]) & (b[:, 3] > bbox[1])
        return np.flatnonzero(hit)

    def read_chip(self, lat: float, lon: float, bands=None) -> tuple[np.ndarray, tuple, np.ndarray]:
        """The mosaicked chip around a point -> (values float32 [C, R, R] with NaN where no scene
        has data, rs_bbox, valid bool [R, R])."""
        bands = list(bands or self.bands)
        crs, transform, bbox = self.chip_grid(lat, lon)
        size = self.read_px
        chip = np.full((len(bands), size, size), np.nan, np.float32)
        valid = np.zeros((size, size), bool)
        for i in self._candidates(bbox):
            values, ok = self._warp(self.scenes[i], crs, transform, size, bands)
            take = ok & ~valid
            chip[:, take] = values[:, take]
            valid |= take
            if valid.all():
                break
        return chip, bbox, valid

    def chips_with_coverage(self, latlon, size_px: int | None = None):
        """Chips centred on points [N, 2] (lat, lon) -> (rs float32 [N, C, R, R], rs_bbox
        float64 [N, 4], valid bool [N, R, R]); R = read_px (`size_px` is the model's size,
        reached by preprocessing). Missing pixels of chips at or above min_coverage hold the
        chip's per-band mean; chips below it are all zero and must not be used."""
        latlon = np.asarray(latlon, np.float64).reshape(-1, 2)
        n, size = len(latlon), self.read_px
        rs = np.zeros((n, len(self.bands), size, size), np.float32)
        bbox = np.zeros((n, 4), np.float64)
        valid = np.zeros((n, size, size), bool)
        for i, (lat, lon) in enumerate(latlon):
            chip, bbox[i], valid[i] = self.read_chip(float(lat), float(lon))
            if valid[i].mean() >= self.min_coverage:
                means = np.nanmean(chip.reshape(len(self.bands), -1), axis=1)
                rs[i] = np.where(np.isnan(chip), means[:, None, None], chip)
        return rs, bbox, valid

    def chips(self, latlon, size_px: int | None = None):
        """(rs, rs_bbox) as `chips_with_coverage` (the demo world's interface)."""
        rs, bbox, _ = self.chips_with_coverage(latlon, size_px)
        return rs, bbox

    # -- true colour for the map --------------------------------------------------------------
    def _rgb_bands(self) -> list[str]:
        rgb = [b for b in RGB_BANDS if b in self.bands]
        return rgb if len(rgb) == 3 else self.bands[:3]

    def _stretch_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """2-98% limits per RGB band, from a chip at the middle of each of up to 4 scenes."""
        if self._stretch is None:
            samples = []
            for b in self.scene_bounds[:4]:
                chip, _, ok = self.read_chip(
                    (b[1] + b[3]) / 2, (b[0] + b[2]) / 2, self._rgb_bands()
                )
                samples.append(chip[:, ok].reshape(3, -1))
            values = np.concatenate(samples, axis=1)
            if values.shape[1] == 0:
                self._stretch = (np.zeros(3), np.full(3, 3000.0))
            else:
                lo, hi = np.percentile(values, 2, axis=1), np.percentile(values, 98, axis=1)
                self._stretch = (lo, np.maximum(hi, lo + 1e-6))
        return self._stretch

    def read_rgba_mercator(
        self, x0: float, y0: float, x1: float, y1: float, size: int
    ) -> np.ndarray:
        """True colour (B4, B3, B2) over EPSG:3857 bounds (metres) -> uint8 [size, size, 4],
        alpha 0 where no scene has data."""
        from rasterio.crs import CRS
        from rasterio.transform import from_bounds
        from rasterio.warp import transform_bounds

        crs = CRS.from_epsg(3857)
        transform = from_bounds(x0, y0, x1, y1, size, size)
        bands = self._rgb_bands()
        rgb = np.zeros((3, size, size), np.float32)
        valid = np.zeros((size, size), bool)
        bbox = transform_bounds(crs, "EPSG:4326", x0, y0, x1, y1)
        for i in self._candidates(bbox):
            values, ok = self._warp(self.scenes[i], crs, transform, size, bands)
            take = ok & ~valid
            rgb[:, take] = values[:, take]
            valid |= take
        lo, hi = self._stretch_limits()
        scaled = (rgb - lo[:, None, None]) / (hi - lo)[:, None, None]
        out = np.zeros((size, size, 4), np.uint8)
        out[..., :3] = (
            (np.clip(scaled, 0, 1) ** (1 / 1.2) * 255).round().astype(np.uint8).transpose(1, 2, 0)
        )
        out[..., 3] = np.where(valid, 255, 0)
        return out

    def __getstate__(self):  # for the Ray engine's workers: handles reopen lazily
        state = self.__dict__.copy()
        state["_handles"], state["_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RasterSource({len(self.scenes)} scenes, {self.fingerprint})"
