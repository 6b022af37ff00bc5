"""The official release's preprocessing preset, and the three real example triples run end to
end through it and an imported (random-weight) model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gair import load_model
from gair.config import resolve_config
from gair.geo import to_chip_coords
from gair.official import import_official, release_bbox_to_wsen, release_lonlat_to_latlon
from gair.preprocess import (
    OFFICIAL_RS_MEAN,
    OFFICIAL_RS_STD,
    OFFICIAL_SV_MEAN,
    OFFICIAL_SV_STD,
    S2_L2A_BANDS,
    preprocess_rs,
    preprocess_sv,
)
from tests.official_reference import make_release_state, save_release_checkpoint

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "official-examples"
KEEP = [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]  # B2..B8A, B11, B12 within B1..B12 without B10
OFFICIAL = resolve_config("official")


def quantize_ref(chip12: np.ndarray) -> np.ndarray:
    """Notes: keep B2..B8A, B11, B12; map [mean - 2 std, mean + 2 std] to [0, 255], clip,
    round down to uint8, divide by 255. numpy float64, as a reference implementation would."""
    x = chip12[KEEP].astype(np.float64)
    mean = np.array(OFFICIAL_RS_MEAN)[:, None, None]
    std = np.array(OFFICIAL_RS_STD)[:, None, None]
    lo, hi = mean - 2 * std, mean + 2 * std
    levels = np.clip((x - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    return levels.astype(np.float32) / 255.0


def test_preset_values_are_the_notes():
    pre = OFFICIAL["preprocess"]
    assert OFFICIAL["rs"]["bands"] == [
        "B2",
        "B3",
        "B4",
        "B5",
        "B6",
        "B7",
        "B8",
        "B8A",
        "B11",
        "B12",
    ]
    assert pre["rs"]["source_bands"] == S2_L2A_BANDS and "B10" not in S2_L2A_BANDS
    assert pre["rs"]["kind"] == "s2-quantize" and pre["rs"]["resize"] == "bicubic"
    assert pre["rs"]["mean"][0] == 1172.9397 and pre["rs"]["std"][-1] == 669.9036
    assert pre["sv"] == {
        "scale": 1.0,
        "mean": [135.4718, 142.2862, 145.1227],
        "std": [59.1998, 59.3528, 72.0230],
        "resize": "bicubic",
    }
    assert OFFICIAL["rs"]["img_size"] == 96 and OFFICIAL["sv"]["img_size"] == 224


def test_s2_quantize_selects_bands_and_rounds_down():
    rng = np.random.default_rng(0)
    chip = rng.integers(0, 6000, size=(12, 96, 96)).astype(np.uint16)
    chip[7, 0, 0] = 0  # B8: below mean - 2 std (= 540.4) -> level 0
    chip[1, 0, 1] = 65535  # B2: far above mean + 2 std -> level 255
    out = preprocess_rs(chip, OFFICIAL)
    assert out.shape == (1, 10, 96, 96) and out.dtype == torch.float32  # 96 px: no resize
    ref = quantize_ref(chip)
    assert np.array_equal(out[0].numpy(), ref)
    assert out[0, 6, 0, 0].item() == 0.0 and out[0, 0, 0, 1].item() == 1.0
    levels = out.numpy() * 255
    assert np.allclose(levels, np.round(levels), atol=1e-4)  # k / 255 values
    # band selection by name: B1 and B9 (indices 0 and 9) do not matter
    chip2 = chip.copy()
    chip2[[0, 9]] = 12345
    assert torch.equal(preprocess_rs(chip2, OFFICIAL), out)


def test_rs_resize_is_bicubic_without_align_corners():
    rng = np.random.default_rng(1)
    chip = rng.integers(0, 5000, size=(12, 181, 246)).astype(np.float32)
    out = preprocess_rs(chip, OFFICIAL)
    ref = F.interpolate(
        torch.from_numpy(quantize_ref(chip))[None],
        size=(96, 96),
        mode="bicubic",
        align_corners=False,
    )
    assert out.shape == (1, 10, 96, 96)
    assert torch.allclose(out, ref, atol=1e-6)


def test_rs_accepts_10_band_chips_and_names_both_band_lists_on_error():
    rng = np.random.default_rng(2)
    chip12 = rng.integers(0, 5000, size=(2, 12, 96, 96)).astype(np.float32)
    ten = chip12[:, KEEP]
    assert torch.equal(preprocess_rs(ten, OFFICIAL), preprocess_rs(chip12, OFFICIAL))
    with pytest.raises(ValueError, match=r"10, H, W.*B12.*12, H, W.*B1'"):
        preprocess_rs(np.zeros((4, 96, 96), np.float32), OFFICIAL)


def test_existing_presets_keep_their_band_check():
    tiny = resolve_config("tiny")
    assert preprocess_rs(np.zeros((4, 32, 32), np.float32), tiny).shape == (1, 4, 32, 32)
    with pytest.raises(ValueError, match="RS chip must be"):
        preprocess_rs(np.zeros((12, 32, 32), np.float32), tiny)


def test_source_bands_must_cover_the_model_bands():
    bad = {"base": "official", "preprocess": {**OFFICIAL["preprocess"]}}
    bad["preprocess"]["rs"] = {**bad["preprocess"]["rs"], "source_bands": ["B1", "B2"]}
    with pytest.raises(ValueError, match="lacks the model's bands"):
        resolve_config(bad)


def test_sv_normalises_0_255_then_bicubic_resizes():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    out = preprocess_sv([image], OFFICIAL)
    # float32 throughout, like the release (a float64 bicubic differs by ~1e-4 on noise)
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None]
    mean = torch.tensor(OFFICIAL_SV_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OFFICIAL_SV_STD).view(1, 3, 1, 1)
    ref = F.interpolate((x - mean) / std, size=(224, 224), mode="bicubic", align_corners=False)
    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=1e-6)


# -- the three real example triples ---------------------------------------------------------
def _examples() -> list[dict]:
    with open(FIXTURES / "examples.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def random_official_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("official-fixtures")
    save_release_checkpoint(make_release_state(seed=21), tmp / "ck.pth")
    import_official(tmp / "ck.pth", tmp / "run")
    return load_model(tmp / "run")


@pytest.mark.official
@pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures/official-examples absent")
def test_real_examples_end_to_end(random_official_model):
    rasterio = pytest.importorskip("rasterio")
    from PIL import Image

    model = random_official_model
    rows = _examples()
    assert len(rows) == 3
    for row in rows:
        lonlat = [float(row["lon"]), float(row["lat"])]
        release_bbox = [
            float(row[k])
            for k in ("rs_bbox_lon_min", "rs_bbox_lat_max", "rs_bbox_lon_max", "rs_bbox_lat_min")
        ]
        bbox = release_bbox_to_wsen(release_bbox)  # (west, south, east, north)
        latlon = release_lonlat_to_latlon(lonlat)  # (lat, lon)
        west, south, east, north = bbox.tolist()
        lat, lon = latlon.tolist()
        assert west <= lon <= east and south <= lat <= north, row["id"]
        with rasterio.open(FIXTURES / row["rs_image"]) as src:
            assert list(src.descriptions) == S2_L2A_BANDS
            chip = src.read().astype(np.float32)
            bounds = src.bounds  # the GeoTIFF's own (left, bottom, right, top)
        assert np.allclose([bounds.left, bounds.bottom, bounds.right, bounds.top], bbox, atol=1e-9)
        with Image.open(FIXTURES / row["sv_image"]) as im:
            sv_image = np.asarray(im.convert("RGB"))
        rs = preprocess_rs(chip, model.config)
        sv = preprocess_sv([sv_image], model.config)
        assert rs.shape == (1, 10, 96, 96) and sv.shape == (1, 3, 224, 224)
        assert rs.min() > -0.3 and rs.max() < 1.3  # k/255 values, bicubic overshoot only
        xy = to_chip_coords(torch.tensor(latlon), torch.tensor(bbox))
        assert bool((xy.abs() <= 1).all()), (row["id"], xy)
        with torch.no_grad():
            tokens = model.encode_rs(rs)
            z = model.query_rs(
                tokens, torch.tensor(bbox).unsqueeze(0), torch.tensor(latlon).view(1, 1, 2)
            )
            s = model.project_sv(model.encode_sv(sv))
            e = model.encode_location(torch.tensor(latlon).view(1, 2))
            g = model.encode_rs_global(rs)
        assert tokens.shape == (1, 48, 12, 12)
        assert z.shape == (1, 1, 48) and s.shape == (1, 48) and e.shape == (1, 48)
        for name, t in (("tokens", tokens), ("z", z), ("s", s), ("e", e), ("g", g)):
            assert bool(torch.isfinite(t).all()), (row["id"], name)
