"""An index "built from the user's own imagery" for the app's tests, made from a demo index:
its manifest says `"world": null` with a `"source"` entry, its cells lose the world's label
columns, and (optionally) its gallery is emptied. `FakeRasters` stands in for the RS source
(`index.sources.open_index_source` is patched to return it): chips come from the demo world,
so the index's vectors stay valid, but it reports itself as a raster source without labels and
draws a basemap of its own (`read_rgba_mercator`)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from gair.world.world import LABELS

FINGERPRINT = "test-own-rasters"


class FakeRasters:
    """A raster source over `bounds4326` whose chips are the demo world's."""

    kind = "rasters"
    has_labels = False
    tiled = True

    def __init__(self, world, bounds4326, native_zoom: int = 6, fingerprint: str = FINGERPRINT):
        self._world = world
        self.bounds4326 = tuple(float(v) for v in bounds4326)
        self.native_zoom = native_zoom
        self.fingerprint = fingerprint
        self.reads = 0

    def chips(self, latlon, size_px):
        return self._world.chips(latlon, size_px)

    @property
    def width_px(self):
        return getattr(self._world, "width_px", None)

    def read_rgba_mercator(self, x0, y0, x1, y1, size):
        """A colour ramp over the tile, alpha 255 inside the bounds only."""
        self.reads += 1
        r = 6378137.0
        xs = x0 + (np.arange(size) + 0.5) * (x1 - x0) / size
        ys = y1 - (np.arange(size) + 0.5) * (y1 - y0) / size
        lon = np.degrees(xs / r)
        lat = np.degrees(2 * np.arctan(np.exp(ys / r)) - math.pi / 2)
        w, s, e, n = self.bounds4326
        inside = ((lat >= s) & (lat <= n))[:, None] & ((lon >= w) & (lon <= e))[None, :]
        out = np.zeros((size, size, 4), np.uint8)
        out[..., 0] = np.linspace(0, 255, size, dtype=np.uint8)[None, :]
        out[..., 1] = np.linspace(0, 255, size, dtype=np.uint8)[:, None]
        out[..., 2] = 90
        out[..., 3] = np.where(inside, 255, 0)
        return out


def make_own_index(src: Path, dst: Path, world=None, empty_gallery: bool = False) -> Path:
    """A copy of the demo index `src` at `dst`, as an index of the user's imagery: with
    `world`, its rendered gallery becomes photos (JPEG files inside the index, `path`)."""
    from index import integrity, vectors

    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    cells = pd.read_parquet(dst / "cells.parquet")
    cells = cells.drop(columns=[c for c in LABELS if c in cells])
    cells.to_parquet(dst / "cells.parquet", index=False)
    bounds = [
        round(float(cells["lon"].min()) - 0.5, 6),
        round(float(cells["lat"].min()) - 0.5, 6),
        round(float(cells["lon"].max()) + 0.5, 6),
        round(float(cells["lat"].max()) + 0.5, 6),
    ]
    if world is not None and not empty_gallery:
        _gallery_as_photos(dst, world)
    if empty_gallery:
        dim = int(manifest["dim"])
        pd.read_parquet(dst / "streetviews.parquet").iloc[:0].to_parquet(
            dst / "streetviews.parquet", index=False
        )
        np.save(dst / "streetviews.npy", np.zeros((0, dim), np.float32))
        import faiss

        vectors.write_index(faiss.IndexFlatIP(dim), dst / "streetviews.faiss")
        manifest["streetviews"].update(
            count=0, ids_sha256=integrity.ids_sha256([]), source="none", factory="Flat"
        )
    if world is not None and not empty_gallery:
        manifest["streetviews"]["source"] = "images"
    manifest["world"] = None
    manifest.pop("world_absolute", None)
    manifest["source"] = {
        "kind": "rasters",
        "path": ["../imagery"],
        "path_absolute": [str(dst.parent / "imagery")],
        "fingerprint": FINGERPRINT,
        "bounds": bounds,
    }
    manifest["files"] = integrity.record(dst)
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst


def _gallery_as_photos(index_dir: Path, world, size: int = 64) -> None:
    """Render the gallery's views once into index_dir/streetviews/<id>.jpg (as a build from
    photos stores them) and replace heading/seed with the relative `path`."""
    gallery = pd.read_parquet(index_dir / "streetviews.parquet")
    (index_dir / "streetviews").mkdir()
    paths = []
    for row in gallery.itertuples():
        img = world.render_view(
            np.array([row.lat, row.lon]), float(row.heading_deg), int(row.seed), size=size
        )
        rel = f"streetviews/{row.sv_id}.jpg"
        Image.fromarray(img).save(index_dir / rel, quality=95)
        paths.append(rel)
    gallery = gallery.drop(columns=["heading_deg", "seed"]).assign(path=paths)
    gallery.to_parquet(index_dir / "streetviews.parquet", index=False)


def patch_sources(monkeypatch, world, bounds4326, **kw) -> FakeRasters:
    """Make `index.sources.open_index_source` return a FakeRasters over the demo world."""
    import index.sources

    fake = FakeRasters(world, bounds4326, **kw)
    monkeypatch.setattr(index.sources, "open_index_source", lambda *a, **k: fake)
    return fake
