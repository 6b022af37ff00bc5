"""Street-view galleries of real images: a CSV of photographs (bad rows skipped and counted),
prepared triples, thumbnails inside the index dir, size-independent embeddings, and an index
with no gallery at all (empty FAISS index, empty searches, integrity checks)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gair.atomic import write_json
from gair.data.shards import PREPARED_FORMAT, PREPARED_FORMAT_VERSION, _ShardWriter
from gair.images import square_resize
from index import integrity, vectors
from index.gallery import (
    embed_image_gallery,
    gallery_from_csv,
    gallery_from_prepared,
    load_csv_image,
    thumbnail_names,
)


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, structured RGB image (sky, ground, blobs): resampling barely changes it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.stack([0.3 + 0.5 * yy, 0.5 + 0.3 * np.sin(6 * xx), 0.8 - 0.6 * yy], -1)
    for _ in range(6):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r**2)[..., None]
        img = img * (1 - blob) + blob * rng.uniform(0, 1, 3)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def embedder(tiny_run):
    from gair.embed import Embedder

    return Embedder(tiny_run, device="cpu")


def test_square_resize_crops_the_centre_and_antialiases():
    wide = np.zeros((40, 100, 3), np.uint8)
    wide[:, 30:70] = 200  # the centre square 40x40 is columns 30..69
    out = square_resize(wide, 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert (out == 200).all()
    same = scene(16, 16)
    assert (square_resize(same, 16) == same).all()
    stripes = np.zeros((256, 256, 3), np.uint8)
    stripes[:, ::2] = 255  # 1-px stripes: an antialiased shrink gives grey, not aliasing
    assert abs(float(square_resize(stripes, 32).mean()) - 127.5) < 4
    assert square_resize(stripes, 32).std() < 4
    for bad in (np.zeros((0, 5, 3), np.uint8), np.zeros((5, 5), np.uint8), np.zeros((4, 4, 3))):
        with pytest.raises(ValueError, match="square_resize"):
            square_resize(bad, 8)
    with pytest.raises(ValueError, match="size"):
        square_resize(same, 0)


@pytest.fixture
def csv_gallery(tmp_path):
    """A CSV with 5 good rows (images of several sizes, aspects and formats) and 7 bad ones."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(scene(120, 300, 1)).save(root / "wide.jpg", quality=95)
    Image.fromarray(scene(200, 90, 2)).save(root / "sub" / "tall.png")
    Image.fromarray(scene(40, 40, 3)).save(root / "small.webp")
    Image.fromarray(scene(700, 900, 4)).save(root / "big.jpg", quality=90)
    Image.fromarray(scene(64, 64, 5)).save(root / "odd id.png")
    (root / "broken.jpg").write_bytes(b"not an image at all")
    rows = [
        ("a1", 48.85, 2.35, "wide.jpg"),
        ("a2", 45.76, 4.83, "sub/tall.png"),
        ("a3", -33.9, 151.2, "small.webp"),
        ("a/4 é", 40.7, -74.0, "big.jpg"),
        ("A1", 1.0, 2.0, "odd id.png"),  # differs from a1 by case only
        ("b1", float("nan"), 2.0, "wide.jpg"),  # bad coordinates
        ("b2", 95.0, 2.0, "wide.jpg"),
        ("b3", 10.0, 200.0, "wide.jpg"),
        ("b4", 10.0, 20.0, "missing.jpg"),  # missing image
        ("b5", 10.0, 20.0, "broken.jpg"),  # corrupt image
        ("a1", 10.0, 20.0, "small.webp"),  # duplicate id
        ("", 10.0, 20.0, "small.webp"),  # empty id
    ]
    frame = pd.DataFrame(rows, columns=["sv_id", "lat", "lon", "image_path"])
    frame.loc[7, "lon"] = None  # an empty cell (row b3) is bad too
    frame.to_csv(root / "gallery.csv", index=False)
    return root / "gallery.csv"


def test_csv_gallery_skips_and_counts_bad_rows(csv_gallery):
    frame, report = gallery_from_csv(csv_gallery)
    assert list(frame["sv_id"]) == ["a1", "a2", "a3", "a/4 é", "A1"]
    assert list(frame.columns[:3]) == ["sv_id", "lat", "lon"]
    assert frame["lat"].dtype == np.float64 and frame.loc[1, "lon"] == pytest.approx(4.83)
    assert report["rows"] == 12 and report["kept"] == 5 and report["skipped_total"] == 7
    assert report["skipped"] == {
        "bad_coordinates": 3,
        "corrupt_image": 1,
        "duplicate_id": 1,
        "missing_id": 1,
        "missing_image": 1,
    }
    assert report["examples"]["missing_image"][0]["id"] == "b4"
    assert "broken.jpg" in report["examples"]["corrupt_image"][0]["detail"]
    assert report["examples"]["duplicate_id"][0]["row"] == 10
    json.dumps(report)  # a report is plain JSON
    # without decoding, the corrupt image passes here (and is caught when embedding)
    lazy, lazy_report = gallery_from_csv(csv_gallery, decode=False)
    assert "b5" in set(lazy["sv_id"]) and "corrupt_image" not in lazy_report["skipped"]
    # a limit keeps the first usable rows and reads no further
    first, first_report = gallery_from_csv(csv_gallery, limit=2)
    assert list(first["sv_id"]) == ["a1", "a2"] and first_report["not_read"] == 10


def test_csv_gallery_columns_root_and_errors(tmp_path, csv_gallery):
    Image.fromarray(scene(50, 80)).save(tmp_path / "x.jpg")
    other = tmp_path / "meta"
    other.mkdir()
    pd.DataFrame({"LAT": [1.5], "Lon": [2.5], "Path": ["x.jpg"]}).to_csv(
        other / "g.csv", index=False
    )
    frame, report = gallery_from_csv(other / "g.csv", images_root=tmp_path)
    assert list(frame["sv_id"]) == ["x.jpg"] and report["kept"] == 1  # id: the image path
    assert load_csv_image(frame.iloc[0]).shape == (50, 80, 3)
    pd.DataFrame({"latitude": [1.0], "lon": [2.0], "image": ["x.jpg"]}).to_csv(
        other / "bad.csv", index=False
    )
    with pytest.raises(ValueError, match=r"lat, lon.*\['latitude', 'lon', 'image'\]"):
        gallery_from_csv(other / "bad.csv", images_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        gallery_from_csv(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="folder"):
        gallery_from_csv(csv_gallery, images_root=tmp_path / "nowhere")
    empty, empty_report = gallery_from_csv(other / "g.csv")  # images not under the CSV folder
    assert empty.empty and list(empty.columns[:3]) == ["sv_id", "lat", "lon"]
    assert empty_report["skipped"] == {"missing_image": 1}


def test_embed_csv_gallery_writes_thumbnails(embedder, csv_gallery, tmp_path):
    frame, report = gallery_from_csv(csv_gallery, decode=False)
    (csv_gallery.parent / "small.webp").unlink()  # gone between listing and embedding
    out = tmp_path / "index"
    sv, vecs = embed_image_gallery(
        embedder, frame, load_csv_image, out, progress=False, batch=2, report=report
    )
    assert list(sv["sv_id"]) == ["a1", "a2", "a/4 é", "A1"]
    assert list(sv.columns) == ["sv_id", "lat", "lon", "path", "source"]
    assert (sv["source"] == "images").all()
    assert report["skipped"]["missing_image"] == 2 and report["skipped"]["corrupt_image"] == 1
    assert report["kept"] == 4 and report["skipped_total"] == 8
    assert vecs.shape == (4, embedder.dim) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    paths = list(sv["path"])
    assert len(set(p.lower() for p in paths)) == 4
    assert paths[0] == "streetviews/a1.jpg"
    for p in paths:
        assert p.startswith("streetviews/") and "/" not in p[len("streetviews/") :]
        with Image.open(out / p) as im:
            assert im.format == "JPEG" and max(im.size) <= 256
    with Image.open(out / paths[2]) as im:  # big.jpg 900x700 -> 256 px long side, aspect kept
        assert im.size == (256, 199)
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temps left
    # the same vectors as embedding the model's view of each image directly
    px = embedder.config["sv"]["img_size"]
    direct = embedder.street_view(
        [square_resize(load_csv_image(r), px) for r in frame.iloc[[0, 1, 3, 4]].to_dict("records")]
    )
    assert np.allclose(vecs, direct, atol=1e-5)


def test_one_photo_at_two_sizes_embeds_alike(embedder, tmp_path):
    big = scene(480, 640, 7)
    small = np.asarray(Image.fromarray(big).resize((200, 150), Image.Resampling.LANCZOS))
    other = scene(480, 640, 8)
    frame = pd.DataFrame({"sv_id": ["big", "small", "other"], "lat": 0.0, "lon": 0.0})
    images = {"big": big, "small": small, "other": other}
    _, vecs = embed_image_gallery(
        embedder, frame, lambda r: images[r["sv_id"]], tmp_path, progress=False
    )
    same, different = float(vecs[0] @ vecs[1]), float(vecs[0] @ vecs[2])
    assert same > 0.995 and different < 0.9


def test_thumbnail_names_are_safe_and_distinct():
    names = thumbnail_names(["a1", "A1", "a/b", "a_b", "../x", ".hidden", "x" * 300, ""])
    assert names[0] == "a1.jpg" and names[3] == "a_b.jpg"
    assert len({n.lower() for n in names}) == len(names)
    for n in names:
        assert n[0].isalnum() and "/" not in n and len(n) < 90 and n.endswith(".jpg")


def write_prepared(out, n=5, shard_size=2, px=24):
    rng = np.random.default_rng(0)
    writer = _ShardWriter(out, shard_size)
    svs, latlon = [], []
    for i in range(n):
        sv = scene(px, px, i)
        lat, lon = rng.uniform(-60, 60), rng.uniform(-180, 180)
        writer.add(
            rs=np.zeros((3, 4, 4), np.float32),
            rs_bbox=(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01),
            latlon=(lat, lon),
            sv=sv,
            coverage=1.0,
            id=f"p{i}",
        )
        svs.append(sv)
        latlon.append((lat, lon))
    writer.flush()
    manifest = {
        "format": PREPARED_FORMAT,
        "format_version": PREPARED_FORMAT_VERSION,
        "count": n,
        "bands": ["B2", "B3", "B4"],
        "shards": writer.shards,
    }
    write_json(out / "manifest.json", manifest)
    return np.stack(svs), np.array(latlon)


def test_prepared_gallery(embedder, tmp_path):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    svs, latlon = write_prepared(prepared)
    frame, views = gallery_from_prepared(prepared)
    assert list(frame["sv_id"]) == [f"p{i}" for i in range(5)]
    assert np.allclose(frame[["lat", "lon"]].to_numpy(), latlon)
    assert len(views) == 5 and (views[3] == svs[3]).all() and (views[-1] == svs[4]).all()
    with pytest.raises(IndexError):
        views[5]
    sv, vecs = embed_image_gallery(embedder, frame, views.load, tmp_path / "index", progress=False)
    assert list(sv["path"]) == [f"streetviews/p{i}.jpg" for i in range(5)]
    assert all((tmp_path / "index" / p).is_file() for p in sv["path"])
    px = embedder.config["sv"]["img_size"]
    direct = embedder.street_view(np.stack([square_resize(s, px) for s in svs]))
    assert np.allclose(vecs, direct, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="gair data prepare"):
        gallery_from_prepared(tmp_path / "none")
    (tmp_path / "other").mkdir()
    write_json(tmp_path / "other" / "manifest.json", {"format": "something else"})
    with pytest.raises(ValueError, match="not a `gair data prepare` output"):
        gallery_from_prepared(tmp_path / "other")


def test_empty_gallery_is_a_valid_index(embedder, tmp_path):
    from index.build import write_geoparquet
    from index.search import GridIndex

    dim = embedder.dim
    sv, vecs = embed_image_gallery(
        embedder, pd.DataFrame(columns=["sv_id", "lat", "lon"]), None, tmp_path, progress=False
    )
    assert sv.empty and {"sv_id", "lat", "lon", "path", "source"} <= set(sv.columns)
    assert vecs.shape == (0, dim) and vecs.dtype == np.float32
    assert not (tmp_path / "streetviews").exists()

    assert vectors.choose_factory(0, dim) == "Flat"
    index = vectors.build_index(vecs)
    assert index.ntotal == 0 and index.d == dim
    assert vectors.tune_nprobe(index, vecs) == (None, 1.0, 1.0)
    assert vectors.bytes_per_vector(index, 0) == 0.0
    with pytest.raises(ValueError, match="training"):
        vectors.build_index(vecs, factory="IVF16,Flat")
    vectors.write_index(index, tmp_path / "streetviews.faiss")
    index = vectors.read_index(tmp_path / "streetviews.faiss")
    np.save(tmp_path / "streetviews.npy", vecs)
    stored = np.load(tmp_path / "streetviews.npy", mmap_mode="r")
    sv["path"] = sv["path"].astype(str)
    write_geoparquet(sv, tmp_path / "streetviews.parquet")
    table = pd.read_parquet(tmp_path / "streetviews.parquet")
    assert len(table) == 0 and "sv_id" in table

    # the open checks pass with 0 street views (and a few cells)
    cell_vecs = np.eye(3, dim, dtype=np.float32)
    cells = pd.DataFrame({"cell_id": ["c0", "c1", "c2"], "lat": [0.0, 1, 2], "lon": [0.0, 1, 2]})
    cell_index = vectors.build_index(cell_vecs)
    manifest = {
        "cells": {"count": 3, "ids_sha256": integrity.ids_sha256(cells["cell_id"])},
        "streetviews": {"count": 0, "ids_sha256": integrity.ids_sha256([])},
    }
    integrity.check_on_open(
        tmp_path,
        manifest,
        {"cells": cells, "streetviews": table},
        {
            "cells": [("cells.npy", cell_vecs), ("cells_location.npy", cell_vecs)],
            "streetviews": [("streetviews.npy", stored)],
        },
        {"cells": cell_index, "streetviews": index},
    )

    # searching an empty gallery gives no hits with the usual columns
    grid = object.__new__(GridIndex)  # just what the searches use
    grid.manifest, grid._lock = {"dim": dim}, vectors.SearchLock()
    grid.cells, grid.cell_index, grid.streetviews, grid.sv_index = cells, cell_index, table, index
    grid.cell_searcher = vectors.Searcher(cell_index, cell_vecs, 0)
    grid.sv_searcher = vectors.Searcher(index, np.zeros((0, dim), np.float16), 0)
    hits = grid.search_streetviews(cell_vecs[0], k=5, origin=(0.0, 0.0))
    assert hits.empty
    assert list(hits.columns[:2]) == ["rank", "similarity"]
    assert {"sv_id", "lat", "lon", "path", "distance_km"} <= set(hits.columns)
    assert "geometry" not in hits
    assert len(grid.search_cells(cell_vecs[0], k=5)) == 3
