"""Label sets and the "find more places like these" classifier (issue 16), on a small fake
index: GeoJSON I/O and its bad input, embedding against an index (checkpoints, unknown ids), the
classifier, the hits and their exports. On a real index (the app's functions, the CLI, a restart,
precision): tests/test_classify_index.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from index import classify, classify_export
from index.labelset import (
    MAX_LABELSET_BYTES,
    Example,
    LabelSet,
    embed_labelset,
    parse_labelset,
    read_labelset,
    to_geojson,
    write_labelset,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_RUN = REPO / "checkpoints" / "demo"
DEMO_INDEX = Path(os.environ.get("GAIR_TEST_INDEX") or REPO / "data" / "index")


# --------------------------------------------------------------------------- a small fake index


class FakeIndex:
    """What the classifier reads of a GridIndex, over n random cells in 4 clusters."""

    def __init__(self, n: int = 2000, dim: int = 16, seed: int = 0):
        rng = np.random.default_rng(seed)
        centres = rng.normal(size=(4, dim))
        self.cluster = rng.integers(0, 4, n)
        v = centres[self.cluster] + 0.25 * rng.normal(size=(n, dim))
        self.cell_vectors = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        self.cells = pd.DataFrame(
            {
                "cell_id": [f"c{i}" for i in range(n)],
                "lat": rng.uniform(-60, 70, n),
                "lon": rng.uniform(-180, 180, n),
            }
        )
        self.streetviews = pd.DataFrame({"sv_id": ["v1"], "lat": [1.0], "lon": [2.0]})
        self.sv_vectors = self.cell_vectors[:1].copy()
        self.manifest = {"checkpoint_hash": "a" * 64, "grid": {"spec": "fake"}}

    def similarity_to_all_cells(self, vec):
        return self.cell_vectors @ np.asarray(vec, np.float32)

    def cell_rows(self, ids):
        return np.asarray(pd.Index(self.cells["cell_id"]).get_indexer(list(ids)), np.int64)

    def sv_rows(self, ids):
        return np.asarray(pd.Index(self.streetviews["sv_id"]).get_indexer(list(ids)), np.int64)


def _cells_set(index, pos, neg, name="t") -> LabelSet:
    ls = LabelSet(name)
    for p in pos:
        ls = ls.add(Example("positive", "cell", cell_id=f"c{p}"))
    for p in neg:
        ls = ls.add(Example("negative", "cell", cell_id=f"c{p}"))
    return embed_labelset(index, ls)


@pytest.fixture(scope="module")
def fake():
    return FakeIndex()


# --------------------------------------------------------------------------- GeoJSON


def _sample_set() -> LabelSet:
    vec = np.linspace(-1, 1, 16).astype(np.float32)
    vec /= np.linalg.norm(vec)
    return LabelSet(
        "forests",
        (
            Example("positive", "point", 48.85, 2.35),
            Example("negative", "cell", 10.0, 20.0, cell_id="c3", checkpoint="a" * 64),
            Example("positive", "streetview", 1.0, 2.0, sv_id="v1"),
            Example("positive", "upload", name="photo.jpg", checkpoint="a" * 64, vector=vec),
        ),
    )


def test_geojson_round_trip(tmp_path):
    ls = _sample_set()
    doc = to_geojson(ls)
    assert doc["type"] == "FeatureCollection" and doc["name"] == "forests"
    f0 = doc["features"][0]
    assert f0["geometry"] == {"type": "Point", "coordinates": [2.35, 48.85]}
    assert f0["properties"] == {"label": "positive", "kind": "point"}
    assert doc["features"][1]["properties"]["cell_id"] == "c3"
    assert doc["features"][3]["geometry"] is None  # a photo has no location
    assert len(doc["features"][3]["properties"]["embedding"]) == 16
    path = write_labelset(tmp_path / "set.geojson", ls)
    back = read_labelset(path)
    assert back == ls  # labels, kinds, places, ids (vectors are not compared)
    np.testing.assert_allclose(back.examples[3].vector, ls.examples[3].vector, atol=1e-6)
    assert not list(tmp_path.glob(".*tmp"))  # written atomically


def test_minimal_geojson_and_inferred_kinds():
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 45]},
             "properties": {"label": "Positive"}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [6, 46]},
             "properties": {"label": "negative", "cell_id": "c9", "extra": 1}},
        ],
    }  # fmt: skip
    ls = parse_labelset(json.dumps(doc), name="mine")
    assert ls.name == "mine" and [e.kind for e in ls.examples] == ["point", "cell"]
    assert (ls.n_positive, ls.n_negative) == (1, 1)


def _fc(*features) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def _feat(props, coords=(5.0, 45.0)) -> dict:
    geom = None if coords is None else {"type": "Point", "coordinates": list(coords)}
    return {"type": "Feature", "geometry": geom, "properties": props}


@pytest.mark.parametrize(
    "data, message",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (json.dumps({"type": "Feature"}), "FeatureCollection"),
        (json.dumps([1, 2]), "FeatureCollection"),
        (_fc(), "no features"),
        (json.dumps({"type": "FeatureCollection", "features": {}}), "must be a list"),
        (_fc(_feat({"label": "maybe"})), "'maybe'"),
        (_fc(_feat({})), "no 'label'"),
        (_fc(_feat({"label": "positive"}, (5.0, 95.0))), "outside"),
        (_fc(_feat({"label": "positive"}, ("a", 1))), "numbers"),
        (_fc(_feat({"label": "positive"}, None)), "no geometry"),
        (_fc(_feat({"label": "positive", "kind": "blob"})), "kind must be one of"),
        (_fc(_feat({"label": "positive", "kind": "cell"})), "needs a 'cell_id'"),
        (_fc(_feat({"label": "positive", "kind": "upload"}, None)), "needs its 'embedding'"),
        (
            _fc(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": []},
                    "properties": {"label": "positive"},
                }
            ),
            "must be a Point",
        ),  # fmt: skip
    ],
)
def test_malformed_geojson_is_a_clear_error(data, message):
    with pytest.raises(ValueError, match=message):
        parse_labelset(data, name="upload")


def test_oversized_upload_is_refused_before_parsing(tmp_path):
    big = b" " * (50 * 2**20)  # 50 MB
    with pytest.raises(ValueError, match="50.0 MB, over the 5 MB limit"):
        parse_labelset(big, name="big.geojson")
    path = tmp_path / "big.geojson"
    path.write_bytes(big)
    with pytest.raises(ValueError, match="over the 5 MB limit"):
        read_labelset(path)
    assert MAX_LABELSET_BYTES == 5 * 2**20
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_labelset(tmp_path / "nope.geojson")


def test_set_edits_are_immutable_and_dedupe():
    ls = LabelSet("a").add(Example("positive", "cell", cell_id="c1"))
    ls2 = ls.add(Example("negative", "cell", cell_id="c1"))  # relabelled, not duplicated
    assert len(ls) == 1 and len(ls2) == 1 and ls2.examples[0].label == "negative"
    assert ls.examples[0].label == "positive"
    assert len(ls2.remove(0)) == 0 and len(ls2) == 1
    with pytest.raises(ValueError, match="no example #3"):
        ls2.remove(3)
    with pytest.raises(ValueError, match="label must be"):
        ls.add(Example("yes", "cell", cell_id="c2"))


# --------------------------------------------------------------------------- embedding


def test_embed_labelset_on_a_fake_index(fake):
    ls = LabelSet(
        "x",
        (
            Example("positive", "cell", cell_id="c5"),
            Example("negative", "streetview", 1.0, 2.0, sv_id="v1"),
            Example("positive", "point", 10.0, 20.0),
        ),
    )
    calls = []

    def embed(latlon):
        calls.append(latlon.copy())
        return np.tile(fake.cell_vectors[7], (len(latlon), 1))

    out = embed_labelset(fake, ls, embed_points=embed)
    np.testing.assert_array_equal(out.examples[0].vector, fake.cell_vectors[5])
    assert out.examples[0].lat == pytest.approx(fake.cells["lat"][5])  # from the index
    np.testing.assert_array_equal(out.examples[1].vector, fake.sv_vectors[0])
    np.testing.assert_array_equal(out.examples[2].vector, fake.cell_vectors[7])
    assert {e.checkpoint for e in out.examples} == {"a" * 64}
    np.testing.assert_allclose(calls[0], [[10.0, 20.0]])
    embed_labelset(fake, out, embed_points=embed)  # embedded with this checkpoint: kept
    assert len(calls) == 1
    foreign = LabelSet("y", (Example("positive", "point", 10.0, 20.0, checkpoint="b" * 64,
                                     vector=fake.cell_vectors[1]),))  # fmt: skip
    embed_labelset(fake, foreign, embed_points=embed)  # another checkpoint: re-embedded
    assert len(calls) == 2


def test_embed_labelset_refuses_unknown_ids_and_foreign_uploads(fake):
    with pytest.raises(ValueError, match=r"2 cell id\(s\) are not in this index.*'nope'"):
        embed_labelset(fake, _ids_set("nope", "zip", "c1"))
    with pytest.raises(ValueError, match="not in this index's gallery: 'v9'"):
        embed_labelset(fake, LabelSet("s", (Example("positive", "streetview", 1, 2, sv_id="v9"),)))
    vec = fake.cell_vectors[0]
    up = Example("positive", "upload", name="p.jpg", checkpoint="b" * 64, vector=vec)
    with pytest.raises(ValueError, match="checkpoint bbbbbbbbbbbb.*cannot be re-embedded"):
        embed_labelset(fake, LabelSet("u", (up,)))
    wrong_dim = Example("positive", "upload", name="p.jpg", checkpoint="a" * 64, vector=vec[:8])
    with pytest.raises(ValueError, match=r"shape \(8,\).*\(16,\)"):
        embed_labelset(fake, LabelSet("u", (wrong_dim,)))


def _ids_set(*ids) -> LabelSet:
    return LabelSet("s", tuple(Example("positive", "cell", cell_id=i) for i in ids))


# --------------------------------------------------------------------------- the classifier


def test_one_positive_ranks_by_similarity(fake):
    ls = _cells_set(fake, [3], [])
    r = classify.classify(fake, ls)
    assert r.model.mode == "similarity"
    np.testing.assert_allclose(r.scores, fake.cell_vectors @ fake.cell_vectors[3], atol=1e-6)
    assert len(r.hits) == classify.SIMILARITY_TOP  # the default threshold keeps the top 100
    assert r.hits.iloc[0]["cell_id"] == "c3" and r.hits.iloc[0]["label"] == "positive"
    assert r.hits["score"].is_monotonic_decreasing


def test_logistic_finds_the_cluster_and_is_deterministic(fake):
    rng = np.random.default_rng(1)
    pos = rng.choice(np.flatnonzero(fake.cluster == 2), 5, replace=False)
    neg = rng.choice(np.flatnonzero(fake.cluster != 2), 5, replace=False)
    ls = _cells_set(fake, pos, neg)
    a = classify.classify(fake, ls)
    b = classify.classify(fake, ls)
    assert a.model.mode == "logistic" and a.model.n_background > 0
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.scores.min() >= 0.0 and a.scores.max() <= 1.0
    top = classify.select_hits(fake, a.scores, top=100, labelset=ls, unlabelled_only=True)
    assert len(top) == 100 and not set(top["cell_id"]) & {f"c{p}" for p in (*pos, *neg)}
    precision = (fake.cluster[[int(c[1:]) for c in top["cell_id"]]] == 2).mean()
    assert precision >= 0.9
    labelled = a.hits[a.hits["label"] != ""]
    assert set(labelled["label"]) <= {"positive", "negative"}


def test_background_excludes_the_sets_own_cells(fake):
    bg_pos = classify.background_positions(len(fake.cells))
    assert len(bg_pos) == classify.BACKGROUND_N and len(set(bg_pos.tolist())) == len(bg_pos)
    ls = _cells_set(fake, [int(bg_pos[0])], [int(bg_pos[1])])
    bg = classify.background_for(fake, ls)
    assert len(bg) == classify.BACKGROUND_N - 2
    # many negatives: no background
    many = _cells_set(fake, [0], list(range(1, 1 + classify.FEW_NEGATIVES)))
    assert classify.fit_labelset(fake, many).n_background == 0


def test_select_hits_threshold_top_and_bad_input(fake):
    scores = np.linspace(0, 1, len(fake.cells)).astype(np.float32)
    hits = classify.select_hits(fake, scores, threshold=0.9)
    assert len(hits) == int((scores >= np.float32(0.9)).sum())
    assert list(hits.columns) == classify.HIT_COLUMNS and hits["rank"].tolist()[:2] == [1, 2]
    assert hits.iloc[0]["cell_id"] == f"c{len(fake.cells) - 1}"
    assert len(classify.select_hits(fake, scores, top=7)) == 7
    with pytest.raises(ValueError, match="positive integer"):
        classify.select_hits(fake, scores, top=0)
    with pytest.raises(ValueError, match="finite"):
        classify.select_hits(fake, scores, threshold=float("nan"))


@pytest.mark.parametrize(
    "ls, message",
    [
        (LabelSet("empty"), "is empty"),
        (LabelSet("neg", (Example("negative", "cell", cell_id="c1"),)), "no positive"),
    ],
)
def test_sets_that_cannot_rank(fake, ls, message):
    with pytest.raises(ValueError, match=message):
        classify.classify(fake, embed_labelset(fake, ls))


def test_learning_curve(fake):
    rng = np.random.default_rng(2)
    pos = rng.choice(np.flatnonzero(fake.cluster == 1), 6, replace=False)
    neg = rng.choice(np.flatnonzero(fake.cluster != 1), 6, replace=False)
    ls = _cells_set(fake, pos, neg)
    held = classify.heldout_scores(ls.vectors(), ls.labels(), classify.background_for(fake, ls))
    y = ls.labels().astype(bool)
    assert held[y].min() > held[~y].max()  # each held-out positive above every negative
    curve = classify.learning_curve(fake, ls, threshold=0.3)
    assert curve["examples"].tolist() == list(range(2, 11)) + [12]
    last = curve.iloc[-1]
    assert last["scored"] == 12 and last["precision"] == 1.0 and last["recall"] == 1.0
    assert classify.curve_sizes(23) == [*range(2, 11), 15, 20, 23]
    assert classify.curve_sizes(1) == []


# --------------------------------------------------------------------------- exports


def test_hit_exports_have_h3_polygons(tmp_path):
    import geopandas as gpd
    import h3

    ids = [h3.latlng_to_cell(48.85, 2.35, 4), h3.latlng_to_cell(65.0, 179.99, 3)]
    hits = pd.DataFrame(
        {"rank": [1, 2], "cell_id": ids, "lat": [48.85, 65.0], "lon": [2.35, 179.99],
         "score": [0.9, 0.8], "label": ["", "positive"]}
    )  # fmt: skip
    classify_export.write_hits(tmp_path / "h.parquet", hits)
    gdf = gpd.read_parquet(tmp_path / "h.parquet")
    assert gdf.crs.to_epsg() == 4326 and list(gdf["cell_id"]) == ids
    assert gdf.geometry.iloc[0].geom_type == "Polygon"
    assert gdf.geometry.iloc[0].contains(gpd.points_from_xy([2.35], [48.85])[0])
    # the cell on the antimeridian is split at +-180
    am = gdf.geometry.iloc[1]
    assert am.geom_type == "MultiPolygon" and am.bounds[0] >= -180 and am.bounds[2] <= 180
    classify_export.write_hits(tmp_path / "h.geojson", hits, {"mode": "logistic"})
    doc = json.loads((tmp_path / "h.geojson").read_text())
    assert doc["properties"] == {"mode": "logistic"}
    assert doc["features"][0]["properties"]["cell_id"] == ids[0]
    assert doc["features"][0]["geometry"]["type"] == "Polygon"
    with pytest.raises(ValueError, match=r"\.parquet or \.geojson"):
        classify_export.write_hits(tmp_path / "h.csv", hits)
    not_h3 = hits.assign(cell_id=["x1", "x2"])
    assert classify_export.hits_geodataframe(not_h3).geometry.iloc[0].geom_type == "Point"
