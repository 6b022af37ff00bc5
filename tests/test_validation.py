"""The public API validates before it computes (issue #18 item 4): `gair.geo`, `Embedder` and
the prediction heads refuse bad input with a one-line ValueError naming the argument, the bad
value and what is expected, instead of returning NaN or silently scrambled results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gair import geo
from gair.embed import Embedder
from gair.evaluation.probes import Probe
from gair.heads import HEADS_FILE, Heads

REPO = Path(__file__).resolve().parents[1]
DEMO_RUN = REPO / "checkpoints" / "demo"

BBOX = [10.0, 40.0, 12.0, 42.0]  # west, south, east, north
INSIDE = [41.0, 11.0]


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


# -- gair.geo.to_chip_coords -----------------------------------------------------------------
BAD_CHIP_INPUTS = [
    # (latlon, bbox, words the message must contain)
    ([np.nan, 11.0], BBOX, ["latlon", "non-finite", "nan"]),
    ([41.0, np.inf], BBOX, ["latlon", "non-finite", "inf"]),
    ([95.0, 11.0], BBOX, ["latlon", "latitude", "95.0", "[-90, 90]"]),
    ([-90.5, 11.0], BBOX, ["latlon", "latitude", "-90.5"]),
    (INSIDE, [10.0, 42.0, 12.0, 40.0], ["bbox", "south < north", "south=42.0", "north=40.0"]),
    (INSIDE, [10.0, 41.0, 12.0, 41.0], ["bbox", "south < north", "south=41.0"]),
    (INSIDE, [11.0, 40.0, 11.0, 42.0], ["bbox", "west and east must differ", "11.0"]),
    (INSIDE, [10.0, -95.0, 12.0, 42.0], ["bbox", "-90 <= south", "south=-95.0"]),
    (INSIDE, [10.0, 40.0, np.nan, 42.0], ["bbox", "non-finite", "nan"]),
    (INSIDE, [10.0, 40.0, 1e9, 42.0], ["bbox", "west and east", "1000000000.0"]),
    ([41.0, 11.0, 0.0], BBOX, ["latlon", "shape", "(3,)", "(lat, lon)"]),
    (INSIDE, [10.0, 40.0, 12.0], ["bbox", "shape", "(3,)", "(west, south, east, north)"]),
    ([[41.0, 11.0]] * 3, [BBOX] * 2, ["do not broadcast", "(3,)", "(2,)"]),
    (41.0, BBOX, ["latlon", "shape", "()"]),
]


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("latlon, bbox, words", BAD_CHIP_INPUTS)
def test_to_chip_coords_refuses_bad_input(latlon, bbox, words, kind):
    if kind == "torch":
        latlon, bbox = torch.tensor(latlon, dtype=torch.float64), torch.tensor(bbox)
    else:
        latlon, bbox = np.array(latlon), np.array(bbox)
    with pytest.raises(ValueError) as err:
        geo.to_chip_coords(latlon, bbox)
    msg = _one_line(err)
    for word in words:
        assert word in msg, (word, msg)


def test_to_chip_coords_names_the_first_bad_point_in_a_batch():
    latlon = torch.tensor([[41.0, 11.0], [41.5, 11.5], [95.0, 11.0], [96.0, 11.0]])
    with pytest.raises(ValueError, match=r"latitude 95\.0 at index \(2,\)"):
        geo.to_chip_coords(latlon, torch.tensor(BBOX))
    bboxes = np.array([BBOX, BBOX, [10.0, 42.0, 12.0, 40.0]])
    with pytest.raises(ValueError, match=r"at index \(2,\)"):
        geo.to_chip_coords(np.array([INSIDE] * 3), bboxes)


def test_to_chip_coords_still_computes_on_good_input():
    xy = geo.to_chip_coords(np.array([[42.0, 10.0], [41.0, 11.0]]), np.array(BBOX))
    np.testing.assert_allclose(xy, [[-1, -1], [0, 0]], atol=1e-12)
    # torch float32 points with a numpy bbox: same kind as latlon back
    t = geo.to_chip_coords(torch.tensor([[41.0, 11.0]]), np.array(BBOX))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), [[0.0, 0.0]], atol=1e-6)
    # the model's batched call: latlon [B, N, 2] against rs_bbox [B, 1, 4]
    latlon = torch.tensor([[[41.0, 11.0], [42.0, 12.0]], [[0.0, 179.5], [0.5, -179.5]]])
    bbox = torch.tensor([[BBOX], [[179.0, -1.0, -179.0, 1.0]]], dtype=torch.float64)
    xy = geo.to_chip_coords(latlon.double(), bbox)
    np.testing.assert_allclose(xy.numpy(), [[[0, 0], [1, -1]], [[-0.5, 0], [0.5, -0.5]]])
    # the whole circle is a bbox 360 degrees wide, not a degenerate one
    xy = geo.to_chip_coords(np.array([[0.0, 90.0]]), np.array([-180.0, -90.0, 180.0, 90.0]))
    np.testing.assert_allclose(xy, [[0.5, 0.0]])
    assert geo.bbox_width_deg(np.array([-180.0, -90.0, 180.0, 90.0])) == 360.0


# -- longitudes: one wrap either way, no further ---------------------------------------------
def test_longitude_range_on_arrays():
    np.testing.assert_allclose(geo.validate_latlon([[10.0, 181.0]]), [[10.0, -179.0]])
    np.testing.assert_allclose(geo.validate_latlon([[10.0, -540.0]]), [[10.0, -180.0]])
    np.testing.assert_allclose(geo.validate_latlon([[10.0, 540.0]]), [[10.0, -180.0]])
    np.testing.assert_allclose(geo.validate_latlon([[10.0, -190.0]]), [[10.0, 170.0]])
    for lon in (1e308, 541.0, -541.0):
        with pytest.raises(ValueError) as err:
            geo.validate_latlon(np.array([[10.0, 0.0], [10.0, lon]]))
        msg = _one_line(err)
        assert f"longitude {lon!r} at index (1,)" in msg and "[-540, 540]" in msg
    with pytest.raises(ValueError, match=r"1e\+308"):
        geo.validate_latlon(torch.tensor([[10.0, 1e308]], dtype=torch.float64))


def test_longitude_range_on_points():
    assert geo.validate_point(10, 181) == (10.0, -179.0)
    assert geo.validate_point("10", "-540") == (10.0, -180.0)
    assert geo.validate_point("10", "-190") == (10.0, 170.0)
    for lon in ("1e308", "541", 541, -1e308):
        with pytest.raises(ValueError) as err:
            geo.validate_point(10, lon)
        msg = _one_line(err)
        assert "longitude" in msg and "[-540, 540]" in msg and str(lon) in msg
    with pytest.raises(ValueError, match="latitude"):
        geo.validate_point("90.0001", 0)
    assert geo.validate_point(-90, 0) == (-90.0, 0.0)


def test_wrap_lon_refuses_beyond_one_wrap():
    assert geo.wrap_lon(181.0) == -179.0
    np.testing.assert_allclose(geo.wrap_lon(np.array([540.0, -540.0])), [-180.0, -180.0])
    for lon in (1e308, 541.0, np.nan):
        with pytest.raises(ValueError, match="lon"):
            geo.wrap_lon(np.array([0.0, lon]))


@pytest.mark.parametrize(
    "bad",
    [
        np.array([[True, False]]),
        [[10.0, True]],
        np.array([[1j, 0.0]]),
        [[10.0, 1 + 0j]],
        torch.tensor([[True, False]]),
        torch.tensor([[1j, 0.0]]),
    ],
)
def test_bools_and_complex_are_not_coordinates(bad):
    with pytest.raises(ValueError, match="real numbers"):
        geo.validate_latlon(bad)


def test_bools_and_complex_are_not_point_coordinates():
    for lat, lon in ((True, 0.0), (0.0, False), (np.bool_(True), 0.0), (1j, 0.0), (0.0, 2 + 0j)):
        with pytest.raises(ValueError, match="real number"):
            geo.validate_point(lat, lon)


# -- the other public functions of gair.geo --------------------------------------------------
def test_haversine_validates_both_arguments():
    with pytest.raises(ValueError, match=r"latlon_a.*non-finite.*nan"):
        geo.haversine_km(np.array([np.nan, 0.0]), np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match=r"latlon_b: latitude 91\.0 at index \(1,\)"):
        geo.haversine_km(np.array([0.0, 0.0]), np.array([[0.0, 1.0], [91.0, 0.0]]))
    with pytest.raises(ValueError, match=r"latlon_b must have shape \(\.\.\., 2\)"):
        geo.haversine_km(np.array([0.0, 0.0]), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="do not broadcast"):
        geo.haversine_km(np.zeros((3, 2)), np.zeros((4, 2)))
    # training's call: expanded [Q, G, 2] tensors (checked without materialising Q x G)
    q = torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    d = geo.haversine_km(q[:, None].expand(-1, 3, -1), q[None, :1].expand(2, 3, -1))
    assert d.shape == (2, 3) and abs(float(d[1, 0]) - 111.19) < 0.1
    bad = torch.tensor([[0.0, 0.0], [0.0, 600.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="longitude 600.0"):
        geo.haversine_km(bad[:, None].expand(-1, 3, -1), q[None, :1].expand(2, 3, -1))


def test_from_chip_coords_and_bbox_around_validate():
    with pytest.raises(ValueError, match=r"xy contains a non-finite value: nan"):
        geo.from_chip_coords(np.array([np.nan, 0.0]), np.array(BBOX))
    with pytest.raises(ValueError, match="xy must have shape"):
        geo.from_chip_coords(np.array([0.0, 0.0, 0.0]), np.array(BBOX))
    with pytest.raises(ValueError, match="bbox: need -90 <= south < north"):
        geo.from_chip_coords(np.array([0.0, 0.0]), np.array([10.0, 42.0, 12.0, 40.0]))
    with pytest.raises(ValueError, match="latitude"):  # y far outside: lat beyond the pole
        geo.from_chip_coords(np.array([0.0, -100.0]), np.array([10.0, 80.0, 12.0, 89.0]))
    np.testing.assert_allclose(geo.from_chip_coords(np.array([0.0, 0.0]), np.array(BBOX)), INSIDE)
    with pytest.raises(ValueError, match="latlon: latitude 95.0"):
        geo.bbox_around(np.array([95.0, 0.0]), 1.0, 1.0)
    with pytest.raises(ValueError, match=r"half_width_deg must be in \(0, 180\)"):
        geo.bbox_around(np.array([0.0, 0.0]), 180.0, 1.0)
    with pytest.raises(ValueError, match="half_height_deg"):
        geo.bbox_around(np.array([0.0, 0.0]), 1.0, np.nan)
    np.testing.assert_allclose(
        geo.bbox_around(np.array([0.0, 179.5]), 1.0, 1.0), [178.5, -1.0, -179.5, 1.0]
    )


# -- Embedder --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder(world):
    if not (DEMO_RUN / "model.safetensors").is_file():
        pytest.skip(f"the shipped checkpoint {DEMO_RUN} is absent")
    return Embedder(DEMO_RUN, world, device="cpu")


POINTS = np.array([[48.85, 2.35], [-33.9, 18.4], [35.7, 139.7], [40.7, -74.0], [-23.5, -46.6]])


@pytest.mark.parametrize("method", ["point", "location"])
def test_embedder_refuses_2_by_n(embedder, method):
    embed = getattr(embedder, method)
    for bad in (POINTS.T, POINTS.T.tolist(), torch.from_numpy(POINTS.T.copy())):
        with pytest.raises(ValueError) as err:
            embed(bad)
        msg = _one_line(err)
        assert f"Embedder.{method}" in msg and "(2, 5)" in msg and "[N, 2]" in msg
        assert "[2, N]" in msg and "(lat, lon)" in msg


@pytest.mark.parametrize("method", ["point", "location"])
@pytest.mark.parametrize("shape", [(3,), (5, 3), (1, 5, 2), (10,), ()])
def test_embedder_refuses_other_shapes(embedder, method, shape):
    with pytest.raises(ValueError) as err:
        getattr(embedder, method)(np.zeros(shape))
    msg = _one_line(err)
    assert f"got shape {shape}" in msg and "[2] (one (lat, lon) point) or [N, 2]" in msg


@pytest.mark.parametrize("method", ["point", "location"])
def test_embedder_accepts_n_by_2_and_one_point(embedder, method):
    embed = getattr(embedder, method)
    many = embed(POINTS)
    assert many.shape == (5, embedder.dim) and many.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(many, axis=1), 1.0, atol=1e-5)
    one = embed(POINTS[2])  # [2]: one point
    assert one.shape == (1, embedder.dim)
    np.testing.assert_allclose(one[0], many[2], atol=1e-5)
    two = embed(POINTS[:2])  # [2, 2] reads as two points, not as a lat row and a lon row
    np.testing.assert_allclose(two, many[:2], atol=1e-5)
    # a longitude one wrap out is the same place
    wrapped = embed(np.array([[POINTS[3, 0], POINTS[3, 1] + 360.0]]))
    np.testing.assert_allclose(wrapped[0], many[3], atol=1e-5)


@pytest.mark.parametrize("method", ["point", "location"])
def test_embedder_empty_and_bad_values(embedder, method):
    embed = getattr(embedder, method)
    for empty in (np.zeros((0, 2)), []):
        out = embed(empty)
        assert out.shape == (0, embedder.dim) and out.dtype == np.float32
    with pytest.raises(ValueError, match=rf"Embedder\.{method}: latlon: latitude 95\.0"):
        embed(np.array([[0.0, 0.0], [95.0, 0.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        embed([[np.nan, 0.0]])
    with pytest.raises(ValueError, match=r"longitude 1e\+308"):
        embed([[0.0, 1e308]])


def test_embedder_batch_sizes_are_positive_integers(embedder, world):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="Embedder.location: batch_size must be a positive"):
            embedder.location(POINTS, batch_size=bad)
    with pytest.raises(ValueError, match="Embedder: tile_batch must be a positive integer"):
        Embedder(DEMO_RUN, world, device="cpu", tile_batch=0)


def test_street_view_validates_images(embedder):
    ok = np.zeros((32, 48, 3), np.uint8)
    cases = [
        ([ok, ok.astype(np.float32)], ["image 1", "float32", "uint8"]),
        ([ok[..., 0]], ["image 0", "(32, 48)", "[H, W, 3]"]),
        ([ok, ok, np.zeros((0, 48, 3), np.uint8)], ["image 2", "(0, 48, 3)"]),
        ([ok, np.zeros((32, 48, 4), np.uint8)], ["image 1", "(32, 48, 4)"]),
        (np.zeros((2, 32, 48, 3), np.float64), ["uint8 [N, H, W, 3]", "float64"]),
        ("photo.jpg", ["path", "photo.jpg"]),
    ]
    for images, words in cases:
        with pytest.raises(ValueError) as err:
            embedder.street_view(images)
        msg = _one_line(err)
        assert "Embedder.street_view" in msg
        for word in words:
            assert word in msg, (word, msg)
    empty = embedder.street_view([])
    assert empty.shape == (0, embedder.dim)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(3)]
    out = embedder.street_view(imgs)
    assert out.shape == (3, embedder.dim)
    np.testing.assert_allclose(embedder.street_view(imgs[1])[0], out[1], atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        embedder.street_view(imgs, batch_size=-1)


# -- prediction heads ------------------------------------------------------------------------
@pytest.fixture()
def heads_run(tmp_path) -> Path:
    """A copy of the demo run's heads and config (the weights are not needed to load heads)."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", HEADS_FILE):
        shutil.copy(DEMO_RUN / name, run / name)
    return run


def _edit_config(run: Path, edit) -> None:
    cfg = json.loads((run / "config.json").read_text())
    edit(cfg)
    (run / "config.json").write_text(json.dumps(cfg))


def _task(cfg: dict, name: str) -> dict:
    return next(t for t in cfg["heads"]["tasks"] if t["name"] == name)


def _both(x):
    """The inputs the demo heads may read: the INR and the location embedding."""
    return {"inr": x, "location": x}


def test_demo_heads_predict_validates_embeddings(heads_run):
    heads = Heads.load(heads_run)
    e = heads.in_dim
    assert e == 256
    x = np.random.default_rng(0).normal(size=(3, e)).astype(np.float32)
    out = heads.predict(_both(x))
    assert out["koppen"].shape == (3, 5) and out["elevation_m"].shape == (3,)
    np.testing.assert_allclose(out["koppen"].sum(1), 1.0, atol=1e-5)
    assert heads.predict(_both(np.zeros((0, e))))["landcover"].shape == (0, 17)
    for bad, words in [
        (np.zeros((3, e + 1)), ["(3, 257)", "[N, 256]"]),
        (np.zeros((3, 128)), ["(3, 128)", "[N, 256]"]),
        (np.zeros(e), ["(256,)", "emb[None]"]),
        (np.zeros((e, 3)), ["(256, 3)"]),
        (np.zeros((2, 3, e)), ["(2, 3, 256)"]),
        (np.full((2, e), 1 + 1j), ["real numbers", "complex"]),
    ]:
        with pytest.raises(ValueError) as err:
            heads.predict(_both(bad))
        msg = _one_line(err)
        assert msg.startswith("Heads.predict")
        for word in words:
            assert word in msg, (word, msg)
    x[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"finite, got nan at row 1, column 7"):
        heads.predict_table(_both(x))


def test_heads_predict_table_in_chunks_equals_one_pass(heads_run):
    """A 4 M-cell index's predictions are made a chunk at a time (bounded memory): the same
    columns as one pass, and a bad value is reported at its row in the whole input."""
    heads = Heads.load(heads_run)
    rng = np.random.default_rng(1)
    inr, location = (rng.normal(size=(50, heads.in_dim)).astype(np.float32) for _ in range(2))
    inputs = {"inr": inr, "location": location}
    whole, chunked = heads.predict_table(inputs), heads.predict_table(inputs, chunk_rows=7)
    assert set(whole) == set(chunked) and {"pred_koppen", "pred_koppen_p"} <= set(whole)
    for name in whole:
        assert len(chunked[name]) == 50
        if whole[name].dtype.kind == "f":
            np.testing.assert_allclose(
                chunked[name], whole[name], rtol=1e-4, atol=1e-5
            )  # BLAS blocking
        else:
            assert (chunked[name] == whole[name]).all(), name
    location[23, 4] = np.inf
    with pytest.raises(ValueError, match=r"finite, got inf at row 23, column 4"):
        heads.predict_table(inputs, chunk_rows=7)
    location[23, 4] = 0.0
    with pytest.raises(ValueError, match=r"different numbers of rows \{40, 50\}"):
        heads.predict_table({"inr": inr, "location": location[:40]}, chunk_rows=7)


def test_heads_class_list_shorter_than_the_head_is_refused_at_load(heads_run):
    _edit_config(heads_run, lambda cfg: _task(cfg, "landcover")["classes"].pop())
    with pytest.raises(ValueError) as err:
        Heads.load(heads_run)
    msg = _one_line(err)
    assert "'landcover'" in msg and "outputs 17 classes" in msg and "lists 16" in msg


def test_heads_with_wrong_class_count_in_the_file_are_refused_at_load(heads_run):
    heads = Heads.load(heads_run)
    n = len(heads.tasks["continent"].classes)
    in_dim = int(heads.probes["continent"].x_mean.shape[0])  # its input may be INR + location
    heads.probes["continent"] = Probe(in_dim, n + 1, "linear")  # one class too many
    heads.kinds["continent"] = "linear"
    heads.save(heads_run)  # a consistent SHA-256: only the class count disagrees
    with pytest.raises(ValueError) as err:
        Heads.load(heads_run)
    msg = _one_line(err)
    assert "'continent'" in msg and f"outputs {n + 1} classes" in msg and f"lists {n}" in msg


def test_heads_whose_classes_differ_from_the_tasks_are_refused(heads_run):
    _edit_config(heads_run, lambda cfg: _task(cfg, "koppen")["classes"].pop())
    with pytest.raises(ValueError, match=r"'koppen': classes must be the task's 5 classes"):
        Heads.load(heads_run)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda cfg: _task(cfg, "elevation_m").update(in_dim=128), ["in_dim 128", "256"]),
        (lambda cfg: _task(cfg, "koppen").update(kind="ranking"), ["kind must be one of"]),
        (lambda cfg: _task(cfg, "koppen").update(probe="forest"), ["probe must be one of"]),
        (lambda cfg: _task(cfg, "population").update(classes=["a"]), ["regression head"]),
        (
            lambda cfg: _task(cfg, "continent").update(
                probe="linear" if _task(cfg, "continent")["probe"] == "mlp" else "mlp"
            ),
            ["do not match a", "probe"],
        ),
        (lambda cfg: cfg["heads"]["tasks"].pop(), ["tensors of no task", "continent."]),
        (lambda cfg: cfg["heads"].update(tasks=[]), ["non-empty list"]),
    ],
)
def test_inconsistent_heads_description_is_refused_at_load(heads_run, edit, words):
    _edit_config(heads_run, edit)
    with pytest.raises(ValueError) as err:
        Heads.load(heads_run)
    msg = _one_line(err)
    for word in words:
        assert word in msg, (word, msg)


def test_unchanged_copy_loads_and_missing_heads_are_none(heads_run, tmp_path):
    assert set(Heads.load(heads_run).tasks) == {
        "koppen",
        "landcover",
        "elevation_m",
        "population",
        "continent",
    }
    (heads_run / HEADS_FILE).unlink()
    assert Heads.load(heads_run) is None
