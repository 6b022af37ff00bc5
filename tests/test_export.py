"""`gair index export` (index/export.py): one GeoParquet file per table with a fixed-size vector
column. A synthetic index (real H3 cells over France plus cells across the antimeridian and
around both poles, smooth random unit embeddings; FAISS, parquet and manifest written with the
build's own helpers) keeps this file fast and independent of the demo world and model.

Recall of int8 is measured here on synthetic vectors; the demo index's own numbers (lower: its
neighbouring cells are near-ties) are in docs/EXPORT.md (benchmarks/bench_int8.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from index import export

DIM = 256
HASH = "ab" * 32
SPECIAL = [(0.5, 179.99), (65.0, -179.99), (90.0, 0.0), (-90.0, 0.0)]  # antimeridian, poles


def _smooth_unit(lat, lon, seed: int, dim: int = DIM) -> np.ndarray:
    """Unit vectors [N, dim] varying smoothly with position (random Fourier features on the
    sphere plus a little noise): neighbouring cells are similar, as in a real index."""
    rng = np.random.default_rng(seed)
    la, lo = np.radians(lat), np.radians(lon)
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)
    w = rng.normal(0.0, 20.0, (3, dim))
    v = np.cos(xyz @ w + rng.uniform(0, 2 * np.pi, dim)) + 0.3 * rng.normal(size=(len(la), dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def make_index(out: Path, n_sv: int = 60, disk: int = 12) -> Path:
    """A complete index dir at `out` (format_version 2) without model or world."""
    import h3

    from gair.atomic import write_json
    from index import integrity
    from index.build import write_geoparquet, write_vectors
    from index.search import FORMAT_VERSION

    rng = np.random.default_rng(0)
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(46.0, 2.0, 4), disk))
    cells += [h3.latlng_to_cell(la, lo, 4) for la, lo in SPECIAL]
    lat, lon = np.array([h3.cell_to_latlng(c) for c in cells]).T
    n = len(cells)
    frame = pd.DataFrame(
        {
            "cell_id": cells,
            "lat": lat,
            "lon": lon,
            "koppen": rng.integers(0, 30, n),
            "continent": "Europe",
            "pred_koppen": rng.choice(["A", "B", "C"], n),
            "pred_koppen_p": rng.random(n).astype(np.float32),
        }
    )
    sv_lat, sv_lon = rng.uniform(44, 48, n_sv), rng.uniform(0, 4, n_sv)
    gallery = pd.DataFrame(
        {
            "sv_id": [f"sv{i:04d}" for i in range(n_sv)],
            "lat": sv_lat,
            "lon": sv_lon,
            "split": "test",
            "heading_deg": rng.uniform(0, 360, n_sv),
            "seed": np.arange(n_sv),
            "source": "rendered",
        }
    )
    out.mkdir(parents=True)
    cell_stats = write_vectors(out, "cells", _smooth_unit(lat, lon, 1))
    np.save(out / "cells_location.npy", _smooth_unit(lat, lon, 2))
    write_geoparquet(frame, out / "cells.parquet")
    sv_stats = write_vectors(out, "streetviews", _smooth_unit(sv_lat, sv_lon, 3))
    write_geoparquet(gallery, out / "streetviews.parquet")
    manifest = {
        "format_version": FORMAT_VERSION,
        "checkpoint_hash": HASH,
        "checkpoint": "../run",
        "world": {"path": "../world", "fingerprint": "f00d"},
        "grid": {"spec": "h3:4", "land_only": False, "bbox": None},
        "dim": DIM,
        "metric": "inner_product (cosine on L2-normalised vectors)",
        "cells": {**cell_stats, "ids_sha256": integrity.ids_sha256(frame["cell_id"])},
        "streetviews": {**sv_stats, "ids_sha256": integrity.ids_sha256(gallery["sv_id"])},
        "predictions": [],
        "files": integrity.record(out),
    }
    write_json(out / "manifest.json", manifest)
    return out


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    return make_index(tmp_path_factory.mktemp("export") / "index")


@pytest.fixture(scope="module")
def exported(index_dir, tmp_path_factory) -> dict:
    """dtype -> (path, summary) of the cells exported with location vectors."""
    root = tmp_path_factory.mktemp("exported")
    return {
        dt: (
            root / f"{dt}.parquet",
            export.export_geoparquet(index_dir, root / f"{dt}.parquet", vectors=dt, location=True),
        )
        for dt in export.DTYPES
    }


def _recall(exact: np.ndarray, approx: np.ndarray, k: int = 10) -> float:
    top = np.argsort(-exact, axis=1)[:, :k]
    got = np.argsort(-approx, axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top, got)]))


# -- quantisation ---------------------------------------------------------------------------------
def test_quantize_int8_is_symmetric_round_times_127():
    v = np.array([[1.0, -1.0, 0.5, -0.5, 0.0039, -0.0040, 1.2, -3.0]], np.float32)
    q = export.quantize_int8(v)
    assert q.dtype == np.int8 and q.shape == v.shape
    assert q.tolist() == [[127, -127, 64, -64, 0, -1, 127, -127]]  # rint: 63.5 -> 64
    rng = np.random.default_rng(0)
    u = rng.normal(size=(500, 64)).astype(np.float32)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    back = export.dequantize(export.quantize_int8(u))
    assert back.dtype == np.float32
    assert np.abs(back - u).max() <= 0.5 / 127 + 1e-7
    assert np.array_equal(export.quantize_int8(-u), -export.quantize_int8(u))


def test_cell_polygons_at_the_antimeridian_and_the_poles():
    import h3
    from shapely.geometry import Point

    ids = [h3.latlng_to_cell(la, lo, 4) for la, lo in [(46.0, 2.0), *SPECIAL]] + ["not-a-cell"]
    lat, lon = np.array([h3.cell_to_latlng(c) for c in ids[:-1]] + [(1.0, 2.0)]).T
    geoms = export.cell_polygons(ids, lat, lon)
    for cell, g, la, lo in zip(ids[:-1], geoms, lat, lon):
        assert g.is_valid and not g.is_empty, cell
        minx, miny, maxx, maxy = g.bounds
        assert minx >= -180.0 and maxx <= 180.0 and miny >= -90.0 and maxy <= 90.0
        assert g.covers(Point(lo, la)), cell  # the centre lies in its own polygon
        parts = getattr(g, "geoms", [g])
        if abs(la) < 89.0:  # never a polygon spanning the globe: each part is one cell wide
            assert all(p.bounds[2] - p.bounds[0] < 5.0 for p in parts), (cell, g.bounds)
    assert geoms[0].geom_type == "Polygon" and len(geoms[0].exterior.coords) == 7
    assert geoms[1].geom_type == "MultiPolygon"  # split at +-180
    for g, pole in ((geoms[3], 90.0), (geoms[4], -90.0)):  # caps reach the pole
        assert g.geom_type == "Polygon" and g.covers(Point(0.0, pole))
        assert g.bounds[0] == -180.0 and g.bounds[2] == 180.0
        assert g.bounds[3] - g.bounds[1] < 2.0  # a cap, not the rest of the globe
    assert geoms[-1].equals(Point(2.0, 1.0))


# -- the file -------------------------------------------------------------------------------------
def test_file_opens_in_geopandas_with_crs_columns_and_vectors(index_dir, exported, tmp_path):
    import geopandas as gpd

    path, summary = exported["int8"]
    gdf = gpd.read_parquet(path)
    cells = pd.read_parquet(index_dir / "cells.parquet").drop(columns="geometry")
    assert gdf.crs.to_epsg() == 4326 and gdf.geometry.name == "geometry"
    assert list(gdf.columns) == [*cells.columns, "embedding", "location_embedding", "geometry"]
    assert len(gdf) == summary["rows"] == len(cells)
    pd.testing.assert_frame_equal(gdf[cells.columns], cells)
    assert (gdf.geom_type == "Point").all()
    assert np.allclose(gdf.geometry.x, cells["lon"]) and np.allclose(gdf.geometry.y, cells["lat"])
    vecs = np.load(index_dir / "cells.npy")
    codes = np.stack(gdf["embedding"].to_numpy())
    assert codes.dtype == np.int8 and np.array_equal(codes, export.quantize_int8(vecs))
    loc = np.stack(gdf["location_embedding"].to_numpy())
    assert np.array_equal(loc, export.quantize_int8(np.load(index_dir / "cells_location.npy")))

    h3_path = tmp_path / "h3.geoparquet"
    export.export_geoparquet(index_dir, h3_path, vectors="float16", geometry="h3")
    hexes = gpd.read_parquet(h3_path)
    assert set(hexes.geom_type) == {"Polygon", "MultiPolygon"} and hexes.is_valid.all()
    assert hexes.crs.to_epsg() == 4326 and "location_embedding" not in hexes
    centres = gpd.GeoSeries(gpd.points_from_xy(cells["lon"], cells["lat"]), crs=4326)
    assert hexes.geometry.covers(centres).all()
    widths = [
        max(p.bounds[2] - p.bounds[0] for p in getattr(g, "geoms", [g]))
        for g in hexes.geometry[np.abs(cells["lat"]) < 89]
    ]
    assert max(widths) < 5.0  # no polygon spanning the globe


def test_arrow_type_is_a_fixed_size_list_per_dtype(exported):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for dt, (path, summary) in exported.items():
        field = pq.read_schema(path).field("embedding")
        assert pa.types.is_fixed_size_list(field.type) and field.type.list_size == DIM
        assert (
            field.type.value_type
            == {"int8": pa.int8(), "float16": pa.float16(), "float32": pa.float32()}[dt]
        )
        assert summary["bytes"] == path.stat().st_size > 0
        assert summary["bytes_per_vector"] == pytest.approx(summary["bytes"] / summary["rows"])
        assert 0 < summary["vector_bytes_per_vector"] < summary["bytes_per_vector"]
    per_vec = {dt: s["vector_bytes_per_vector"] for dt, (_, s) in exported.items()}
    assert per_vec["int8"] < per_vec["float16"] < per_vec["float32"]


@pytest.mark.parametrize(
    "dtype, sql_type", [("int8", "TINYINT[]"), ("float16", "FLOAT[]"), ("float32", "FLOAT[]")]
)
def test_duckdb_reads_count_type_and_dot_products(index_dir, exported, dtype, sql_type):
    duckdb = pytest.importorskip("duckdb")
    path, summary = exported[dtype]
    con = duckdb.connect()
    src = f"read_parquet('{path}')"
    assert con.sql(f"SELECT count(*) FROM {src}").fetchall()[0][0] == summary["rows"]
    types = {r[0]: r[1] for r in con.sql(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    assert types["embedding"] == sql_type
    q = np.load(index_dir / "cells.npy")[7] * 0.6 + np.load(index_dir / "cells.npy")[300] * 0.4
    q = (q / np.linalg.norm(q)).astype(np.float32)
    rows = con.execute(
        f"SELECT cell_id, list_dot_product(embedding::FLOAT[], ?::FLOAT[]) AS s FROM {src} "
        "ORDER BY s DESC LIMIT 10",
        [q.tolist()],
    ).fetchall()
    stored = export.read_vectors(path, raw=True).astype(np.float64)
    want = stored @ q.astype(np.float64)
    ids = pd.read_parquet(index_dir / "cells.parquet", columns=["cell_id"])["cell_id"]
    top = np.argsort(-want)[:10]
    assert [r[0] for r in rows] == list(ids.iloc[top])
    assert np.allclose([r[1] for r in rows], want[top], rtol=1e-5, atol=1e-4)
    # the fixed-size ARRAY functions need the dimension in the cast
    one = con.execute(
        f"SELECT array_inner_product(embedding::FLOAT[{DIM}], ?::FLOAT[{DIM}]) FROM {src} "
        f"WHERE cell_id = ?",
        [q.tolist(), ids.iloc[top[0]]],
    ).fetchall()[0][0]
    assert one == pytest.approx(want[top[0]], rel=1e-5, abs=1e-4)


def test_metadata_round_trip(index_dir, exported):
    import hashlib

    manifest = json.loads((index_dir / "manifest.json").read_text())
    for dt, (path, summary) in exported.items():
        meta = export.read_metadata(path)
        assert meta == summary["metadata"]
        assert meta["format"] == "gair-embeddings" and meta["version"] == 1
        assert meta["checkpoint_hash"] == HASH and meta["dim"] == DIM and meta["table"] == "cells"
        assert meta["columns"] == ["embedding", "location_embedding"]
        assert meta["grid"] == manifest["grid"]
        assert meta["source"] == {"kind": "world", "fingerprint": "f00d"}
        sha = hashlib.sha256((index_dir / "manifest.json").read_bytes()).hexdigest()
        assert meta["index_manifest_sha256"] == sha
        vec = meta["vectors"]
        assert vec["dtype"] == dt and vec["unit_norm"] is True
        assert vec["scale"] == (127 if dt == "int8" else 1)
        assert vec["quantisation"] == (
            "int8 symmetric: round(unit vector * 127)" if dt == "int8" else vec["quantisation"]
        )
        if dt == "float32":
            assert vec["quantisation"] == "none"
    import pyarrow.parquet as pq

    geo = json.loads(pq.read_schema(exported["int8"][0]).metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"


# -- the vectors ----------------------------------------------------------------------------------
def test_float32_top10_equals_gridindex_exact_search(index_dir, exported):
    from index.search import GridIndex

    index = GridIndex(index_dir, SimpleNamespace(checkpoint_hash=HASH, run_dir="stub"))
    vecs = export.read_vectors(exported["float32"][0])
    assert np.array_equal(vecs, np.load(index_dir / "cells.npy"))
    ids = index.cells["cell_id"].to_numpy()
    rng = np.random.default_rng(1)
    pairs = rng.choice(len(vecs), (2, 20))
    queries = np.concatenate([vecs[pairs[0]], vecs[pairs[0]] + vecs[pairs[1]]])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for q in queries:
        hits = index.search_cells(q, k=10)
        scores = vecs @ q
        top = np.argsort(-scores)[:10]
        # same cells and scores; the order of exact ties (a midpoint is as near to both of its
        # ends) is arbitrary
        assert set(hits["cell_id"]) == set(ids[top])
        assert np.allclose(hits["similarity"], scores[top], atol=1e-6)


def test_int8_recall_against_exact_float32(index_dir, exported):
    """Measured on the synthetic vectors (demo index: see docs/EXPORT.md). The int8 top-10 are
    always true near neighbours: their exact cosine is within the quantisation bound
    2 * sum|q| * 0.5 / 127 of the true 10th."""
    exact = np.load(index_dir / "cells.npy")
    approx = export.read_vectors(exported["int8"][0])
    rng = np.random.default_rng(2)
    n = len(exact)
    in_data = exact[rng.choice(n, 200, replace=False)]
    i, j = rng.choice(n, (2, 200))
    off_data = exact[i] + exact[j]  # midpoints of random pairs: not themselves in the data
    off_data /= np.linalg.norm(off_data, axis=1, keepdims=True)
    jitter = exact[rng.choice(n, 200)] + rng.normal(0, 0.05, (200, DIM)).astype(np.float32)
    jitter /= np.linalg.norm(jitter, axis=1, keepdims=True)
    recall = {
        name: _recall(q @ exact.T, q @ approx.T)
        for name, q in (("in_data", in_data), ("midpoints", off_data), ("jittered", jitter))
    }
    print("int8 recall@10", recall)
    # measured here 0.95 / 0.93 / 0.95 (demo index: 0.76 / 0.86): recall@10 >= 0.95 does not
    # hold for int8 where the 10th and 11th neighbours are closer than its error (~0.002)
    assert min(recall.values()) >= 0.9, recall
    for q in (in_data, off_data):  # int8 top 50, re-ranked with the float32 vectors
        short = np.argsort(-(q @ approx.T), axis=1)[:, :50]
        listed = np.zeros((len(q), n), bool)
        np.put_along_axis(listed, short, True, axis=1)
        reranked = np.where(listed, q @ exact.T, -np.inf)
        assert _recall(q @ exact.T, reranked) >= 0.99
    float16 = export.read_vectors(exported["float16"][0])
    for q in (in_data, off_data):
        assert _recall(q @ exact.T, q @ float16.T) >= 0.99
    for q in np.concatenate([in_data, off_data]):
        s, bound = exact @ q, 2 * np.abs(q).sum() * 0.5 / 127
        tenth = np.sort(s)[-10]
        assert s[np.argsort(-(approx @ q))[:10]].min() >= tenth - bound


def test_streetviews_export_and_an_empty_gallery(index_dir, tmp_path):
    import geopandas as gpd

    out = tmp_path / "sv.parquet"
    summary = export.export_geoparquet(index_dir, out, table="streetviews", vectors="float32")
    gdf = gpd.read_parquet(out)
    assert list(gdf.columns[:3]) == ["sv_id", "lat", "lon"] and len(gdf) == summary["rows"] == 60
    assert np.array_equal(export.read_vectors(out), np.load(index_dir / "streetviews.npy"))
    assert export.read_metadata(out)["table"] == "streetviews"

    empty = make_index(tmp_path / "empty", n_sv=0, disk=1)
    out = tmp_path / "sv0.parquet"
    summary = export.export_geoparquet(empty, out, table="streetviews")
    assert summary["rows"] == 0 and summary["bytes_per_vector"] == 0.0
    assert len(gpd.read_parquet(out)) == 0 and export.read_vectors(out).shape == (0, DIM)


# -- failures -------------------------------------------------------------------------------------
def test_a_crash_mid_write_leaves_no_file(index_dir, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    calls = []

    def boom(self, table, *args, **kwargs):
        calls.append(len(table))
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", boom)
    out = tmp_path / "cells.parquet"
    with pytest.raises(RuntimeError, match="disk on fire"):
        export.export_geoparquet(index_dir, out)
    assert calls and not out.exists() and os.listdir(tmp_path) == []
    out.write_bytes(b"the previous export")
    with pytest.raises(RuntimeError):
        export.export_geoparquet(index_dir, out, vectors="float16")
    assert out.read_bytes() == b"the previous export" and os.listdir(tmp_path) == ["cells.parquet"]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"table": "roads"}, ValueError, "table must be one of cells, streetviews"),
        ({"vectors": "int4"}, ValueError, "vectors must be one of int8, float16, float32"),
        ({"geometry": "wkt"}, ValueError, "geometry must be one of point, h3"),
        ({"table": "streetviews", "geometry": "h3"}, ValueError, "for cells only"),
        ({"table": "streetviews", "location": True}, ValueError, "for cells only"),
        ({"out": "cells.csv"}, ValueError, "must end in .parquet"),
        ({"index_dir": "missing"}, FileNotFoundError, "no index at"),
    ],
)
def test_bad_arguments_are_one_line_errors(index_dir, tmp_path, kwargs, error, message):
    args = {"index_dir": index_dir, "out": tmp_path / "x.parquet", **kwargs}
    if not Path(args["out"]).is_absolute():
        args["out"] = tmp_path / args["out"]
    if args["index_dir"] == "missing":
        args["index_dir"] = tmp_path / "missing"
    with pytest.raises(error) as info:
        export.export_geoparquet(**args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "x.parquet").exists()


def test_a_damaged_index_is_refused(index_dir, tmp_path):
    import shutil

    from gair.atomic import write_json
    from index import integrity
    from index.integrity import IndexDamagedError

    damaged = tmp_path / "index"
    shutil.copytree(index_dir, damaged)
    cells = pd.read_parquet(damaged / "cells.parquet")
    cells.iloc[::-1].to_parquet(damaged / "cells.parquet", index=False)
    with pytest.raises(IndexDamagedError, match="cells.parquet is .* bytes"):
        export.export_geoparquet(damaged, tmp_path / "x.parquet")
    manifest = json.loads((damaged / "manifest.json").read_text())
    manifest["files"] = integrity.record(damaged)  # sizes agree now: the id order does not
    write_json(damaged / "manifest.json", manifest)
    with pytest.raises(IndexDamagedError, match="not in the order"):
        export.export_geoparquet(damaged, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_cli_prints_size_and_bytes_per_vector(index_dir, tmp_path, capsys):
    from gair.cli import main

    out = tmp_path / "cells.parquet"
    code = main(
        [
            "index",
            "export",
            "--index",
            str(index_dir),
            "--out",
            str(out),
            "--geometry",
            "h3",
            "--location",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert (
        "MB on disk" in printed
        and "bytes per row" in printed
        and "float16 vectors (2 x 256-d)" in printed
    )
    code = main(
        [
            "index",
            "export",
            "--index",
            str(index_dir),
            "--out",
            str(out),
            "--vectors",
            "float32",
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["dtype"] == "float32" and summary["bytes"] == out.stat().st_size

    assert main(["index", "export", "--index", str(tmp_path / "nope"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gair: error: no index at") and "\n" not in err
    with pytest.raises(SystemExit) as info:  # argparse choices: usage + one error line, exit 2
        main(["index", "export", "--index", str(index_dir), "--out", str(out), "--vectors", "int4"])
    assert info.value.code == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err
