"""Grid index: build, query, tiling consistency, engines, resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from gair import build_model, save_model
from gair.embed import Embedder, Tiling
from gair.geolocate import locate
from index import build as build_mod
from index.build import BuildSpec, build_index
from index.search import GridIndex, IndexMismatchError


@pytest.fixture(scope="module")
def spec(small_index_spec):
    return small_index_spec


@pytest.fixture(scope="module")
def built(small_index):
    return small_index


def test_tiling_weights_partition_unity_and_stay_inside_chips():
    tiling = Tiling.for_raster(5400, 32)
    assert tiling.stride_px == 15 and 5400 % tiling.stride_px == 0
    rng = np.random.default_rng(0)
    latlon = np.stack([rng.uniform(-90, 90, 500), rng.uniform(-180, 180, 500)], -1)
    rows, cols, w = tiling.tiles_of(latlon)
    np.testing.assert_allclose(w.sum(1), 1.0)
    centres = tiling.centre(rows, cols)
    offset_px = np.abs(centres[..., 0] - latlon[:, None, 0]) / (360 / 5400)
    assert offset_px[w > 0].max() <= tiling.chip_px / 2  # inside the tile's chip


def test_manifest_and_files(built):
    out, manifest = built
    for name in (
        "manifest.json",
        "cells.parquet",
        "cells.faiss",
        "streetviews.parquet",
        "streetviews.faiss",
    ):
        assert (out / name).is_file(), name
    # exact search over the stored float16 vectors, measured against the float32 embeddings
    assert manifest["cells"]["factory"] == "Flat" and manifest["cells"]["recall_at_10"] >= 0.95
    assert manifest["encoder_passes_per_point"] < 0.5  # tile batching: one pass serves many cells
    assert manifest["cells"]["bytes_per_vector"] >= 4 * manifest["dim"]
    assert manifest["cells"]["stored_dtype"] == "float16"
    assert np.load(out / "cells.npy", mmap_mode="r").dtype == np.float16
    assert np.load(out / "cells_location.npy", mmap_mode="r").dtype == np.float16
    import geopandas as gpd

    cells = gpd.read_parquet(out / "cells.parquet")
    assert cells.crs.to_epsg() == 4326 and len(cells) == manifest["cells"]["count"]
    assert {"cell_id", "lat", "lon", "koppen", "landcover", "elevation_m", "is_land"} <= set(
        cells.columns
    )
    assert not list(out.parent.glob(".*building*"))


def test_query_at_cell_centre_returns_that_cell_first(built, spec, world):
    out, _ = built
    index = GridIndex(out, Embedder(spec.checkpoint, world))
    for i in (0, 7, len(index.cells) - 1):
        row = index.cells.iloc[i]
        result = index.query_point(row["lat"], row["lon"], k=5)
        assert result["cells"].iloc[0]["cell_id"] == row["cell_id"]
        assert result["cells"].iloc[0]["distance_km"] < 1e-6


def test_tile_batched_and_single_point_embeddings_agree(built, spec, world):
    out, _ = built
    stored = np.load(out / "cells.npy")
    import pandas as pd

    cells = pd.read_parquet(out / "cells.parquet")
    emb = Embedder(spec.checkpoint, world)
    for i in range(0, len(cells), max(1, len(cells) // 15)):
        alone = emb.point(cells[["lat", "lon"]].to_numpy()[i : i + 1])[0]
        # stored as float16: equal up to its rounding (relative 2^-11) and batching noise
        np.testing.assert_allclose(alone, stored[i].astype(np.float32), rtol=1e-3, atol=2e-6)


def test_embedding_is_continuous_across_tile_borders(spec, world):
    emb = Embedder(spec.checkpoint, world)
    lon = np.linspace(1.9, 2.1, 81)  # crosses the tile-centre line at 2.0 E
    vec = emb.point(np.stack([np.full_like(lon, 46.37), lon], -1))
    steps = np.linalg.norm(np.diff(vec, axis=0), axis=1)
    assert steps.max() < 5 * np.median(steps) + 1e-6


def test_street_view_query_and_cell_query(built, spec, world):
    out, _ = built
    index = GridIndex(out, Embedder(spec.checkpoint, world))
    view = world.render_view(np.array([46.0, 3.0]), 90.0, 1, size=64)
    result = index.query_image(view, k=3)
    assert len(result["cells"]) == 3 and len(result["streetviews"]) == 3
    assert result["embedding"].shape == (index.embedder.dim,)
    lat, lon = index.locate_view(result["embedding"])  # posterior median over all cells
    direct = locate(
        result["embedding"][None],
        np.asarray(index.cell_location),
        index.cells[["lat", "lon"]].to_numpy(),
        index.embedder.logit_scale,
    )[0]
    assert (lat, lon) == pytest.approx(tuple(direct.tolist()))
    assert -90 <= lat <= 90 and -180 <= lon <= 180
    cid = index.cells.iloc[3]["cell_id"]
    assert index.query_cell(cid, k=2)["cells"].iloc[0]["cell_id"] == cid
    with pytest.raises(ValueError, match="not in this index"):
        index.query_cell("ffffffffffffff", k=2)


def test_other_checkpoint_is_a_clear_error(built, world, tmp_path):
    out, _ = built
    torch.manual_seed(1)
    other = save_model(build_model("tiny"), tmp_path / "other")
    with pytest.raises(IndexMismatchError, match="built with checkpoint"):
        GridIndex(out, Embedder(other, world))


def test_empty_land_only_grid(spec, world, tmp_path):
    pacific = BuildSpec(
        **{**spec.__dict__, "bbox": (-150.0, -10.0, -140.0, 0.0), "land_only": True}
    )
    with pytest.raises(ValueError, match="no cells on land"):
        build_index(pacific, tmp_path / "idx", world=world, progress=False)


def test_resume_after_crash_reuses_done_shards(spec, world, tmp_path, monkeypatch):
    out = tmp_path / "index"
    calls = []
    real = build_mod.embed_shard

    def crashing(embedder, latlon, on_chips=None):
        calls.append(len(latlon))
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(embedder, latlon, on_chips)

    monkeypatch.setattr(build_mod, "embed_shard", crashing)
    with pytest.raises(KeyboardInterrupt):
        build_index(spec, out, world=world, progress=False)
    assert not out.exists()  # nothing half-built at the final path
    work = out.with_name(".index.building")
    assert len(list(work.glob("shard_*.npz"))) == 2 and not list(work.glob("*.tmp"))
    calls.clear()
    monkeypatch.setattr(build_mod, "embed_shard", real)
    counted = []
    monkeypatch.setattr(
        build_mod, "embed_shard", lambda e, ll, cb=None: counted.append(1) or real(e, ll, cb)
    )
    manifest = build_index(spec, out, world=world, progress=False)
    n_shards = -(-manifest["cells"]["count"] // spec.shard_size)
    assert len(counted) == n_shards - 2  # only the missing shards were computed
    assert not work.exists()


@pytest.mark.slow
def test_ray_engine_matches_local(built, spec, world, tmp_path):
    pytest.importorskip("ray")
    out, _ = built
    ray_spec = BuildSpec(**{**spec.__dict__, "engine": "ray", "workers": 2})
    build_index(ray_spec, tmp_path / "ray", world=world, progress=False)
    np.testing.assert_allclose(
        np.load(tmp_path / "ray" / "cells.npy"), np.load(out / "cells.npy"), atol=2e-6
    )


def _gair(capsys, *args):
    from gair.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_query_json_and_bad_input(built, spec, capsys):
    out, _ = built
    code, stdout, err = _gair(
        capsys,
        "index",
        "query",
        "--index",
        str(out),
        "--lat",
        "46.5",
        "--lon",
        "2.5",
        "--k",
        "3",
        "--json",
    )
    assert code == 0, err
    payload = json.loads(stdout)
    assert len(payload["cells"]) == 3 and len(payload["embedding"]) == 256
    code, _, err = _gair(
        capsys, "index", "query", "--index", str(out), "--lat", "123", "--lon", "0"
    )
    assert code == 2 and "123" in err
    code, _, err = _gair(
        capsys, "index", "query", "--index", str(out.parent / "nope"), "--lat", "1", "--lon", "1"
    )
    assert code == 2 and "no index" in err
    code, _, err = _gair(
        capsys, "index", "build", "--checkpoint", spec.checkpoint, "--grid", "hex:9"
    )
    assert code == 2 and "h3:RES" in err


def test_console_script_runs():
    done = subprocess.run(
        [sys.executable, "-m", "gair.cli", "index", "query", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "--sv-image" in done.stdout


def test_factory_follows_n_and_never_undertrains_the_quantiser():
    from index.vectors import MIN_POINTS_PER_LIST, choose_factory, rerank_size

    assert choose_factory(255, 256) == "Flat" and rerank_size("Flat") == 0
    assert choose_factory(199_999, 256) == "SQ8" and rerank_size("SQ8") > 0
    assert choose_factory(500_000, 256) == "IVF2048_HNSW32,SQ8"
    assert choose_factory(4_000_000, 256) == "IVF4096_HNSW32,SQ8"
    # 16 sqrt(1e7) would be 65,536 lists: 200k training points allow 4,096 (>= 39 per list)
    assert choose_factory(10_000_000, 256) == "IVF4096_HNSW32,SQ8"
    assert choose_factory(10_000_000, 256, train_size=3_000_000) == "IVF16384_HNSW32,SQ8"
    # int8 codes while they fit the memory budget, then PQ
    big = choose_factory(200_000_000, 256, train_size=10_000_000)
    assert big.endswith(",PQ32") and big.startswith("IVF")
    lists = int(big.split("_")[0].removeprefix("IVF"))
    assert lists * MIN_POINTS_PER_LIST <= 10_000_000


def test_similarity_to_all_cells_is_the_same_in_any_block_size(built, spec, world):
    out, _ = built
    index = GridIndex(out, Embedder(spec.checkpoint, world))
    vec = np.asarray(index.cell_vectors[3], np.float32)
    whole = np.asarray(index.cell_vectors, np.float32) @ vec
    for block in (1, 7, 10_000):
        np.testing.assert_allclose(
            index.similarity_to_all_cells(vec, block=block), whole, atol=1e-6
        )


def _near_tied_unit_vectors(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Unit vectors shaped like grid-cell embeddings: a smooth function of position plus a
    common component, so that neighbours are near-ties (what int8 codes alone cannot order)."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-1, 1, (n, 3))
    freqs = rng.normal(0, 3, (3, dim))
    x = np.cos(pos @ freqs + rng.uniform(0, 6.3, dim)) + 4.0 * rng.normal(0, 1, dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("n", [3_000, 12_000])
def test_int8_search_reranked_in_float16_keeps_recall(n):
    """SQ8 codes + float16 re-rank reach recall@10 >= 0.95 against exact float32 search on
    near-tied vectors, where the int8 codes alone fall short."""
    from index import vectors as V

    x = _near_tied_unit_vectors(n)
    factory = V.choose_factory(n, x.shape[1])
    assert factory == "SQ8"
    index = V.build_index(x, factory)
    stored = x.astype(V.STORED_DTYPE)
    searcher = V.Searcher(index, stored, V.rerank_size(factory))
    codes_only = V.recall_at_k(index, x, n_queries=300)
    reranked = V.recall_at_k(searcher, x, n_queries=300)
    assert reranked >= 0.95 and reranked > codes_only
    scores, ids = searcher.search(x[:5], 10)
    exact = np.einsum("qd,qkd->qk", x[:5], stored[ids].astype(np.float32))
    np.testing.assert_allclose(scores, exact, rtol=1e-6, atol=1e-6)  # float16 cosines
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    assert (ids[:, 0] == np.arange(5)).all()  # a stored vector finds itself first


def test_near_tie_recall_counts_equally_good_answers_only():
    """Where the field is flat (many vectors a hair apart) another set of equally near vectors
    is a right answer: plain recall misses it, recall with near-ties counts it; far vectors
    count under neither. tune_nprobe reports both and tunes on the near-tie one."""
    from index import vectors as V

    rng = np.random.default_rng(3)
    base = rng.normal(size=64)
    flat = base + 1e-6 * rng.normal(size=(40, 64))  # an ice sheet: cosines differ by ~1e-12
    far = rng.normal(size=(40, 64))
    x = np.concatenate([flat, far])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    truth = V.exact_truth(x[:40], k=10, n_queries=5)
    truth.ids = np.tile(np.arange(10), (5, 1))  # "the" exact top 10: 10 of the 40 tied vectors

    class Returns:
        def __init__(self, rows):
            self.rows = rows

        def search(self, queries, k):
            return None, np.tile(self.rows, (len(queries), 1))

    assert V.recall_against(Returns(np.arange(30, 40)), truth, x) == (0.0, 1.0)  # tied: right
    assert V.recall_against(Returns(np.arange(40, 50)), truth, x) == (0.0, 0.0)  # far: wrong
    assert V.recall_against(Returns(np.arange(40, 50)), truth) == (0.0, 0.0)  # no vectors
    nprobe, recall, near = V.tune_nprobe(V.build_index(x, "Flat"), x)
    assert nprobe is None and near >= recall and near == 1.0


def test_searcher_pads_when_fewer_vectors_than_k():
    from index import vectors as V

    x = _near_tied_unit_vectors(300)
    index = V.build_index(x, "SQ8")
    scores, ids = V.Searcher(index, x.astype(np.float16), 200).search(x[:2], 400)
    assert (ids[:, :300] >= 0).all() and (ids[:, 300:] == -1).all()
    assert np.isneginf(scores[:, 300:]).all()


def test_land_only_keeps_coastal_cells_at_a_land_point(spec, world):
    import h3

    from index.build import select_cells

    # the Netherlands and the North Sea: Amsterdam's h3:4 hexagon has its centre in the water
    coast = BuildSpec(**{**spec.__dict__, "bbox": (2.0, 51.0, 8.0, 54.0), "land_only": True})
    cells = select_cells(coast, world)
    assert cells["is_land"].all() and cells["cell_id"].is_unique
    centres = np.array([h3.cell_to_latlng(c) for c in cells["cell_id"]])
    at_sea = ~np.asarray(world.labels(centres)["is_land"], bool)
    assert at_sea.any()  # coastal cells kept ...
    moved = cells[at_sea]
    assert not np.allclose(moved[["lat", "lon"]].to_numpy(), centres[at_sea])  # ... at land points
    assert h3.latlng_to_cell(52.37, 4.90, 4) in set(cells["cell_id"])  # Amsterdam


def test_point_queries_search_street_views_with_the_runs_weight(built, spec, world, tmp_path):
    import shutil

    from gair.place_query import place_query, save_run_weight

    out, _ = built
    run = tmp_path / "run"
    shutil.copytree(spec.checkpoint, run)
    index = GridIndex(out, Embedder(run, world))
    lat, lon = float(index.cells.iloc[3]["lat"]), float(index.cells.iloc[3]["lon"])
    plain = index.query_point(lat, lon, k=5)["streetviews"]  # no weight recorded: the INR alone
    inr = index.embed_point(lat, lon)
    assert plain["sv_id"].tolist() == index.search_streetviews(inr, 5)["sv_id"].tolist()
    save_run_weight(run, {"location_weight": "inf"})
    index = GridIndex(out, Embedder(run, world))  # the weight is read when the run is opened
    assert index.streetview_weight == float("inf")
    loc = index.embedder.location(np.array([[lat, lon]]))[0]
    by_place = index.query_point(lat, lon, k=5)["streetviews"]
    want = index.search_streetviews(place_query(inr, loc, float("inf")), 5)
    assert by_place["sv_id"].tolist() == want["sv_id"].tolist()
    cell = index.query_cell(index.cells.iloc[3]["cell_id"], k=5)["streetviews"]
    stored = place_query(index.cell_vectors[3], index.cell_location[3], float("inf"))
    assert cell["sv_id"].tolist() == index.search_streetviews(stored, 5)["sv_id"].tolist()
