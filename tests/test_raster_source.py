"""Issue 15: the user's own imagery as the RS source, from rasters to a queried index.

The imagery is written here with rasterio (tests/raster_fixtures.py): a 12-band Sentinel-2-like
mosaic in UTM zones 31 and 32 with a gap east of it; the checkpoint is a random one in the
official release's exact layout, imported with no flags."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gair.cli import main
from gair.embed import Embedder
from gair.preprocess import preprocess_rs
from gair.preprocess_presets import S2_L2A_BANDS
from gair.sources import NotCoveredError, open_source
from tests import raster_fixtures as fx


@pytest.fixture(scope="module")
def imagery(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("byo")
    return {
        "rasters": fx.write_mosaic(tmp / "rasters"),
        "aoi": fx.write_aoi(tmp / "aoi.geojson"),
        "run": fx.import_random_release(tmp),
        "tmp": tmp,
    }


@pytest.fixture(scope="module")
def embedder(imagery):
    return Embedder(imagery["run"], open_source(imagery["rasters"], imagery["run"]))


def hand_cut_chip(path, lat: float, lon: float, bands, km=2.24, px=224):
    """A chip cut without gair.sources: reproject the file onto a transverse Mercator square
    centred on the point -> (chip float32 [C, px, px], rs_bbox (W, S, E, N))."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject

    proj = f"+proj=tmerc +lat_0={lat} +lon_0={lon} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
    half = km * 500
    to_ll = Transformer.from_crs(proj, "EPSG:4326", always_xy=True)
    xs, ys = to_ll.transform([-half, half, 0, 0], [0, 0, -half, half])
    chip = np.zeros((len(bands), px, px), np.float32)
    with rasterio.open(path) as src:
        for k, band in enumerate(bands):
            reproject(
                rasterio.band(src, S2_L2A_BANDS.index(band) + 1),
                chip[k],
                src_nodata=0,
                dst_transform=from_origin(-half, half, 2 * half / px, 2 * half / px),
                dst_crs=proj,
                resampling=Resampling.bilinear,
            )
    return chip, (xs[0], ys[2], xs[1], ys[3])


def test_point_at_a_tile_centre_is_the_model_on_a_chip_cut_by_hand(imagery, embedder):
    rows, cols, _ = embedder.tiling.tiles_of(np.array([[45.02, 5.965]]))
    centre = embedder.tiling.centre(rows[:1, 0], cols[:1, 0])  # deep inside file A
    lat, lon = (float(v) for v in centre[0])
    ours = embedder.point(centre)[0]

    bands = embedder.config["rs"]["bands"]
    chip, bbox = hand_cut_chip(imagery["rasters"] / "zone31_a.tif", lat, lon, bands)
    assert (chip > 0).all()
    model = embedder.model
    with torch.no_grad():
        tokens = model.encode_rs(preprocess_rs(chip, embedder.config))
        z = model.query_rs(tokens, torch.tensor([bbox]), torch.tensor([[[lat, lon]]]))[0, 0]
    ref = torch.nn.functional.normalize(z.double(), dim=-1).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_boa_offset_is_undone_and_zones_agree(imagery, embedder):
    """File B stores DN + 1000 with a BOA_ADD_OFFSET tag: its chips read the same
    reflectance as the analytic field, as file A's do."""
    source = embedder.world
    for lon in (5.965, 6.014):  # file A only; file B only
        chip, bbox, valid = source.read_chip(45.02, lon)
        assert valid.all()
        w, s, e, n = bbox
        size = chip.shape[-1]
        t = (np.arange(size) + 0.5) / size
        lat_grid, lon_grid = np.meshgrid(n - (n - s) * t, w + (e - w) * t, indexing="ij")
        b = S2_L2A_BANDS.index(source.bands[0])
        truth = fx.reflectance(lat_grid, lon_grid, b)
        assert np.abs(chip[0] - truth).mean() < 25, lon  # without the offset: ~1000


def test_points_without_imagery_are_refused_not_zero_filled(embedder):
    gap = np.array([[45.02, 6.05]])
    emb, covered = embedder.point_coverage(np.array([[45.02, 5.97], [45.02, 6.05]]))
    assert covered.tolist() == [True, False]
    assert np.isfinite(emb[0]).all() and np.isnan(emb[1]).all()
    with pytest.raises(NotCoveredError, match="no imagery"):
        embedder.point(gap)
    emb, covered = embedder.point_coverage(np.array([[45.02, 6.0]]))  # on the zone seam
    assert covered.all() and np.isfinite(emb).all()


def test_index_over_an_aoi_across_zones_reports_and_drops_uncovered_cells(imagery, capsys):
    from index.grid import grid_cells, load_aoi
    from index.search import GridIndex

    out = imagery["tmp"] / "index"
    argv = ["index", "build", "--checkpoint", str(imagery["run"])]
    argv += ["--source", str(imagery["rasters"]), "--aoi", str(imagery["aoi"])]
    argv += ["--grid", "h3:9", "--out", str(out)]
    assert main(argv) == 0
    assert "without imagery" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    cells = pd.read_parquet(out / "cells.parquet")
    listed = grid_cells("h3:9", None, load_aoi(imagery["aoi"]))
    cov = manifest["coverage"]
    assert cov["cells_listed"] == len(listed) and cov["cells_indexed"] == len(cells)
    assert cov["cells_without_imagery"] == len(listed) - len(cells) > 0
    assert (cells["lon"] < fx.GAP_WEST).all()  # nothing from the gap
    assert (cells["lon"] > 6.0).any() and (cells["lon"] < 6.0).any()  # both zones
    assert manifest["world"] is None and manifest["source"]["kind"] == "rasters"
    assert manifest["streetviews"]["count"] == 0 and manifest["streetviews"]["source"] == "none"

    index = GridIndex.open(out)
    vecs = np.load(out / "cells.npy")
    row = int(np.argmin(np.abs(cells["lon"] - 5.99)))
    again = index.embedder.point(cells.loc[row, ["lat", "lon"]].to_numpy(np.float64))
    np.testing.assert_allclose(again[0], vecs[row], rtol=1e-3, atol=1e-5)  # stored as float16
    hits = index.search_cells(vecs[row], k=5)
    assert hits.iloc[0]["cell_id"] == cells.loc[row, "cell_id"]
    assert index.search_streetviews(vecs[row], k=5).empty
    with pytest.raises(NotCoveredError):
        index.embed_point(45.02, 6.05)


def test_per_band_files_and_a_stac_item_read_like_the_multiband_file(imagery, tmp_path):
    import rasterio

    src_path = imagery["rasters"] / "zone31_a.tif"
    folder = tmp_path / "bands"
    folder.mkdir()
    assets = {}
    with rasterio.open(src_path) as src:
        profile = src.profile | {"count": 1}
        for i, band in enumerate(S2_L2A_BANDS, start=1):
            name = f"T31TGL_20240601_B{band[1:].zfill(2)}_20m.tif"
            with rasterio.open(folder / name, "w", **profile) as dst:
                dst.write(src.read(i), 1)
            assets[band] = {"href": name, "type": "image/tiff", "eo:bands": [{"name": band}]}
    run = imagery["run"]
    multi = open_source(src_path, run).read_chip(45.02, 5.965)
    per_band = open_source(folder, run)
    assert len(per_band.scenes) == 1 and not per_band.skipped
    np.testing.assert_allclose(per_band.read_chip(45.02, 5.965)[0], multi[0])

    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "T31TGL_20240601",
        "geometry": {"type": "Point", "coordinates": [5.97, 45.02]},
        "bbox": [5.93, 44.99, 6.01, 45.06],
        "properties": {"datetime": "2024-06-01T10:00:00Z"},
        "links": [],
        "assets": assets,
    }
    (folder / "item.json").write_text(json.dumps(item))
    stac = open_source(folder / "item.json", run)
    np.testing.assert_allclose(stac.read_chip(45.02, 5.965)[0], multi[0])


def test_footprint_aoi_and_a_clear_error_when_nothing_overlaps(imagery, tmp_path):
    out = tmp_path / "fp"
    argv = ["index", "build", "--checkpoint", str(imagery["run"]), "--source"]
    argv += [str(imagery["rasters"]), "--grid", "h3:7", "--out", str(out)]
    assert main(argv) == 0  # with --source and no area, the grid fills the imagery's footprint
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["grid"]["aoi"]["source"] == "footprint"
    assert manifest["cells"]["count"] > 0
    far = ["--bbox", "10,10,10.05,10.05"]
    argv = ["index", "build", "--checkpoint", str(imagery["run"]), "--source"]
    argv += [str(imagery["rasters"]), *far, "--grid", "h3:8", "--out", str(tmp_path / "x")]
    assert main(argv) == 2  # one line, exit 2: the grid and the imagery do not overlap


@pytest.mark.official
def test_official_examples_prepare_index_query(official_examples_dir, imagery, tmp_path):
    """The three official triples: prepare, an index over their footprints with their
    photos as the gallery, and queries both ways."""
    from gair.data.prepare import prepare
    from gair.images import read_image
    from index.search import GridIndex

    ex = pd.read_csv(official_examples_dir / "examples.csv")
    csv = tmp_path / "streetscapes.csv"
    frame = {"id": ex["id"], "lat": ex["lat"], "lon": ex["lon"], "image": ex["sv_image"]}
    pd.DataFrame(frame).to_csv(csv, index=False)
    prepared = tmp_path / "prepared"
    report = prepare(
        csv, official_examples_dir, official_examples_dir / "rs", prepared,
        bands=S2_L2A_BANDS, chip_km=1.8, chip_px=180, progress=False,
    )  # fmt: skip
    assert report["kept"] == 3, report
    out = tmp_path / "index"
    argv = ["index", "build", "--checkpoint", str(imagery["run"]), "--source", str(prepared)]
    argv += ["--aoi", "footprint", "--grid", "h3:10", "--out", str(out)]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "prepared" and manifest["tiling"] is None
    assert manifest["streetviews"]["count"] == 3
    index = GridIndex.open(out)
    cells = index.cells
    for _, row in ex.iterrows():
        near = cells[(cells["lat"] - row["lat"]).abs() < 0.02]
        assert len(near) > 100  # each footprint is filled with h3:10 cells
        vec = index.embed_point(row["lat"], row["lon"])
        assert np.isfinite(vec).all()
        photo = read_image(official_examples_dir / row["sv_image"])
        hits = index.search_cells(index.embedder.street_view([photo])[0], k=3)
        assert len(hits) == 3
    views = index.streetviews
    assert sorted(views["sv_id"]) == sorted(ex["id"])
    assert all((out / p).is_file() for p in views["path"])


def test_source_errors_are_one_line_before_the_model_loads(imagery, tmp_path, capsys):
    base = ["index", "build", "--checkpoint", str(imagery["run"]), "--out", str(tmp_path / "x")]
    (tmp_path / "empty").mkdir()
    assert main([*base, "--source", str(tmp_path / "empty")]) == 2
    assert "no usable imagery" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main([*base, "--source", str(imagery["rasters"]), "--gallery-csv", str(bad)]) == 2
    assert "needs columns lat, lon" in capsys.readouterr().err
    assert main([*base, "--source", str(imagery["rasters"]), "--land-only"]) == 2
    assert "--land-only needs the demo world" in capsys.readouterr().err
