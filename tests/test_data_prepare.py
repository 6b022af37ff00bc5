"""`gair data prepare`: real-data triples from GeoTIFFs in any CRS, bad rows, atomic output."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin
from safetensors import safe_open

from gair.cli import main
from gair.config import S2_GAIR_BANDS
from gair.data.dataset import PreparedTriples
from gair.data.prepare import L2A_12_BANDS, prepare
from gair.geo import to_chip_coords

# rasterio's affine arithmetic warns about `*` vs `@` (not our code)
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)

# raster A: EPSG:4326, 12 bands with descriptions; values linear in lon/lat
A_WEST, A_NORTH, A_RES, A_W, A_H = 7.0, 45.05, 0.0001, 700, 500
# raster B: UTM 32N, 10 bands in GAIR order, no descriptions; values linear in easting/northing
B_CENTRE = (46.0, 9.0)
B_RES, B_SIZE = 10.0, 300


def value_a(band: int, lat, lon):
    return 1000.0 + 100.0 * band + (lon - A_WEST) * 1e4 + (A_NORTH - lat) * 5e3


def value_b(band: int, e, n, e0, n0):
    return 2000.0 + 100.0 * band + (e - e0) * 0.5 + (n0 - n) * 0.25


def write_tif(path, crs, transform, data, descriptions=None):
    count, h, w = data.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=count, dtype="uint16", crs=crs,
        transform=transform, nodata=0,
    ) as ds:  # fmt: skip
        ds.write(data.astype(np.uint16))
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                ds.set_band_description(i, d)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    rasters, images = root / "rasters", root / "images"
    (rasters / "sub").mkdir(parents=True)
    images.mkdir()
    # A: EPSG:4326
    rows, cols = np.mgrid[0:A_H, 0:A_W]
    lat = A_NORTH - (rows + 0.5) * A_RES
    lon = A_WEST + (cols + 0.5) * A_RES
    data = np.stack([value_a(b, lat, lon) for b in range(12)])
    write_tif(
        rasters / "a_4326.tif",
        "EPSG:4326",
        from_origin(A_WEST, A_NORTH, A_RES, A_RES),
        data,
        L2A_12_BANDS,
    )
    # B: UTM zone 32N, in a sub-folder
    e0, n0 = TO_UTM.transform(B_CENTRE[1], B_CENTRE[0])
    e0, n0 = round(e0 - B_SIZE * B_RES / 2), round(n0 + B_SIZE * B_RES / 2)  # top-left corner
    rows, cols = np.mgrid[0:B_SIZE, 0:B_SIZE]
    e, n = e0 + (cols + 0.5) * B_RES, n0 - (rows + 0.5) * B_RES
    data = np.stack([value_b(b, e, n, e0, n0) for b in range(10)])
    write_tif(rasters / "sub" / "b_utm.tif", "EPSG:32632", from_origin(e0, n0, B_RES, B_RES), data)
    # C: 5 bands, no descriptions (a bad band count) around (40, 0)
    write_tif(
        rasters / "c_5band.tif",
        "EPSG:4326",
        from_origin(0.0, 40.05, 0.0001, 0.0001),
        np.full((5, 100, 100), 500),
    )
    # images
    rng = np.random.default_rng(0)
    for name in ("a1", "a2", "b1", "c1", "dup"):
        Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(
            images / f"{name}.jpg"
        )
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff this is not a jpeg")
    table = [
        ("a1", 45.02, 7.03, "a1.jpg"),  # inside A, centred chip
        ("a2", 45.01, 7.0005, "a2.jpg"),  # 4 m from A's west edge: chip shifted inside
        ("b1", B_CENTRE[0] + 0.001, B_CENTRE[1] - 0.002, "b1.jpg"),  # inside the UTM raster
        ("missing", 45.02, 7.03, "nope.jpg"),
        ("corrupt", 45.02, 7.03, "broken.jpg"),
        ("faraway", 10.0, 10.0, "a1.jpg"),
        ("badlat", 100.0, 7.0, "a1.jpg"),
        ("text", "north", 7.0, "a1.jpg"),
        ("c1", 40.045, 0.005, "c1.jpg"),  # only in the 5-band raster
        ("a1", 45.03, 7.04, "dup.jpg"),  # duplicate id
    ]
    csv = root / "streetscapes.csv"
    pd.DataFrame(table, columns=["id", "lat", "lon", "image_path"]).to_csv(csv, index=False)
    return {"root": root, "csv": csv, "images": images, "rasters": rasters, "e0n0": (e0, n0)}


@pytest.fixture(scope="module")
def prepared(inputs):
    out = inputs["root"] / "out"
    report = prepare(
        inputs["csv"], inputs["images"], inputs["rasters"], out,
        chip_km=1.0, chip_px=32, sv_px=48, shard_size=2, progress=False,
    )  # fmt: skip
    return out, report


def load(out):
    manifest = json.loads((out / "manifest.json").read_text())
    data = {}
    for shard in manifest["shards"]:
        with safe_open(str(out / shard["file"]), framework="np") as f:
            ids = json.loads(f.metadata()["ids"])
            for i, ident in enumerate(ids):
                data[ident] = {k: f.get_tensor(k)[i] for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    return manifest, data


def test_report_counts_kept_and_skipped_rows(prepared):
    out, report = prepared
    assert report["rows"] == 10 and report["kept"] == 3
    assert report["skipped"] == {
        "bad_coordinates": 2,
        "corrupt_image": 1,
        "duplicate_id": 1,
        "missing_image": 1,
        "outside_rasters": 1,
        "wrong_band_count": 1,
    }
    assert json.loads((out / "report.json").read_text()) == report
    ex = report["examples"]
    assert (
        ex["missing_image"][0]["id"] == "missing" and "nope.jpg" in ex["missing_image"][0]["detail"]
    )
    assert (
        ex["wrong_band_count"][0]["id"] == "c1" and "5 bands" in ex["wrong_band_count"][0]["detail"]
    )
    assert "c_5band.tif" in report["rasters"]["wrong_bands"]


def test_shards_and_manifest(prepared):
    out, _ = prepared
    manifest, data = load(out)
    assert manifest["count"] == 3 and manifest["bands"] == S2_GAIR_BANDS
    assert [s["count"] for s in manifest["shards"]] == [2, 1]
    assert sorted(data) == ["a1", "a2", "b1"]
    s = data["a1"]
    assert s["rs"].shape == (10, 32, 32) and s["rs"].dtype == np.float32
    assert s["sv"].shape == (48, 48, 3) and s["sv"].dtype == np.uint8
    assert s["rs_bbox"].dtype == np.float64 and s["latlon"].dtype == np.float64
    assert not list(out.glob("*.tmp")) and not list(out.parent.glob(".out.*"))


def chip_centres(bbox, n):
    west, south, east, north = bbox
    lon = west + (np.arange(n) + 0.5) * (east - west) / n
    lat = north - (np.arange(n) + 0.5) * (north - south) / n
    return np.meshgrid(lat, lon, indexing="ij")


def test_epsg4326_chip_is_centred_with_exact_bbox_and_values(prepared):
    _, data = load(prepared[0])
    s = data["a1"]
    xy = to_chip_coords(s["latlon"], s["rs_bbox"])
    np.testing.assert_allclose(xy, [0.0, 0.0], atol=1e-9)  # centred
    west, south, east, north = s["rs_bbox"]
    km_ns = (north - south) * 111.195
    km_ew = (east - west) * 111.195 * math.cos(math.radians(45.02))
    np.testing.assert_allclose([km_ns, km_ew], [1.0, 1.0], rtol=1e-6)
    # pixel values = the source at each chip pixel centre (bilinear of a linear field is exact);
    # the band order is GAIR's (B2 first = L2A band index 1)
    lat, lon = chip_centres(s["rs_bbox"], 32)
    for k, band in enumerate(S2_GAIR_BANDS):
        expect = value_a(L2A_12_BANDS.index(band), lat, lon)
        np.testing.assert_allclose(s["rs"][k][2:-2, 2:-2], expect[2:-2, 2:-2], atol=2.0)


def test_chip_near_the_raster_edge_is_shifted_inside_and_contains_the_point(prepared):
    _, data = load(prepared[0])
    s = data["a2"]
    west = s["rs_bbox"][0]
    assert west >= A_WEST - 1e-9  # inside the raster
    x, y = to_chip_coords(s["latlon"], s["rs_bbox"])
    assert -1.0 <= x < -0.9 and abs(y) < 1e-9  # the point moved to the chip's west edge
    assert (s["rs"] > 0).all()  # fully covered, no nodata fill


def test_utm_raster_is_reprojected_onto_the_latlon_chip(prepared, inputs):
    _, data = load(prepared[0])
    s = data["b1"]
    np.testing.assert_allclose(to_chip_coords(s["latlon"], s["rs_bbox"]), [0, 0], atol=1e-9)
    e0, n0 = inputs["e0n0"]
    lat, lon = chip_centres(s["rs_bbox"], 32)
    e, n = TO_UTM.transform(lon, lat)
    for k in (0, 5, 9):
        expect = value_b(k, np.asarray(e), np.asarray(n), e0, n0)
        np.testing.assert_allclose(s["rs"][k][2:-2, 2:-2], expect[2:-2, 2:-2], atol=3.0)


def test_prepared_dataset_gives_world_style_samples(prepared, world):
    out, _ = prepared
    cfg = {
        "rs": {"bands": S2_GAIR_BANDS, "img_size": 32, "patch_size": 4},
        "sv": {"img_size": 64, "patch_size": 8},
        "preprocess": {
            "rs": {"kind": "standardize", "mean": [2000.0] * 10, "std": [500.0] * 10},
            "sv": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 255.0},
        },
    }
    ds = PreparedTriples(out, cfg, world=world)
    assert len(ds) == 3
    s = ds[2]
    assert s["rs"].shape == (10, 32, 32) and s["sv"].shape == (3, 64, 64)
    assert s["rs_bbox"].dtype == torch.float64 and s["latlon"].dtype == torch.float64
    assert s["koppen"].dtype == torch.int64 and s["is_land"].item()
    assert s["id"] == "b1"
    # a model that takes a subset of the bands gets them selected by name
    cfg3 = {**cfg, "rs": {"bands": ["B4", "B3", "B2"], "img_size": 32, "patch_size": 4}}
    cfg3["preprocess"] = {
        **cfg["preprocess"],
        "rs": {"kind": "standardize", "mean": [0.0] * 3, "std": [1.0] * 3},
    }
    raw = PreparedTriples(out, cfg3)[0]["rs"]
    _, data = load(out)
    np.testing.assert_allclose(raw[0].numpy(), data["a1"]["rs"][2], rtol=1e-6)  # B4
    assert torch.isnan(PreparedTriples(out, cfg3)[0]["elevation_m"])  # no world: unknown


def test_nothing_usable_exits_2_and_writes_nothing(inputs, tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    pd.DataFrame(
        [("x", 10.0, 10.0, "a1.jpg"), ("y", 45.02, 7.03, "nope.jpg")],
        columns=["id", "lat", "lon", "image"],
    ).to_csv(csv, index=False)
    out = tmp_path / "out"
    args = ["data", "prepare", "--csv", str(csv), "--images", str(inputs["images"]),
            "--rasters", str(inputs["rasters"]), "--out", str(out)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no usable triple" in err and "outside_rasters" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [csv]


def test_cli_success_and_refusal_to_overwrite(inputs, tmp_path, capsys):
    out = tmp_path / "cli_out"
    args = ["data", "prepare", "--csv", str(inputs["csv"]), "--images", str(inputs["images"]),
            "--rasters", str(inputs["rasters"]), "--out", str(out), "--chip-km", "0.5",
            "--chip-px", "16", "--sv-px", "32", "--bands", "B4,B3,B2,B8", "--json"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["bands"] == ["B4", "B3", "B2", "B8"]
    assert main(args) == 2  # exists: needs --force
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_bad_csv_columns_is_a_clear_error(inputs, tmp_path):
    csv = tmp_path / "cols.csv"
    csv.write_text("name,latitude,longitude\nx,1,2\n")
    with pytest.raises(ValueError, match="needs columns id, lat, lon"):
        prepare(csv, inputs["images"], inputs["rasters"], tmp_path / "o", progress=False)


def test_a_crash_leaves_no_partial_output(inputs, tmp_path, monkeypatch):
    import gair.data.prepare as mod

    calls = {"n": 0}
    real = mod.read_chip

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # not a bad row: the whole run dies
        return real(*a, **k)

    monkeypatch.setattr(mod, "read_chip", crashing)
    out = tmp_path / "crash"
    with pytest.raises(KeyboardInterrupt):
        prepare(inputs["csv"], inputs["images"], inputs["rasters"], out, chip_px=16, sv_px=32,
                shard_size=1, progress=False)  # fmt: skip
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp dir left behind either


@pytest.mark.official
def test_official_examples(official_examples_dir, tmp_path):
    ex = pd.read_csv(official_examples_dir / "examples.csv")
    csv = tmp_path / "streetscapes.csv"
    pd.DataFrame(
        {"id": ex["id"], "lat": ex["lat"], "lon": ex["lon"], "image": ex["sv_image"]}
    ).to_csv(csv, index=False)
    out = tmp_path / "official"
    report = prepare(
        csv, official_examples_dir, official_examples_dir / "rs", out,
        chip_km=1.5, chip_px=64, sv_px=224, progress=False,
    )  # fmt: skip
    assert report["kept"] == 3, report
    _, data = load(out)
    for _, row in ex.iterrows():
        s = data[row["id"]]
        # release bbox order [lon_min, lat_max, lon_max, lat_min] -> (west, south, east, north)
        given = (
            row["rs_bbox_lon_min"],
            row["rs_bbox_lat_min"],
            row["rs_bbox_lon_max"],
            row["rs_bbox_lat_max"],
        )
        west, south, east, north = s["rs_bbox"]
        px = 1e-4  # ~ one source pixel (8.98e-5 deg)
        assert given[0] - px <= west < east <= given[2] + px  # the chip lies in the given region
        assert given[1] - px <= south < north <= given[3] + px
        xy = to_chip_coords(np.array([row["lat"], row["lon"]]), s["rs_bbox"])
        assert np.abs(xy).max() <= 1.0  # and contains its point
        # real reflectances, not fill: compare with the source pixels under the chip
        with rasterio.open(official_examples_dir / row["rs_image"]) as src:
            win = src.window(west, south, east, north)
            b2 = src.read(2, window=win).astype(float)
        assert (s["rs"] > 0).all()
        np.testing.assert_allclose(s["rs"][0].mean(), b2.mean(), rtol=0.05)
        assert s["sv"].shape == (224, 224, 3) and s["sv"].std() > 10
