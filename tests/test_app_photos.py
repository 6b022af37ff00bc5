"""Photos in the cross-view search: prepared as the SV encoder was trained (centre square,
antialiased resize), and flagged when they are unlike every street view the index holds (the
out-of-distribution warning); an index without a gallery says so instead of failing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from app import logic
from app.logic import novelty
from tests.own_imagery import make_own_index, patch_sources

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


class FakeIndex:
    def __init__(self, sv_vectors, size=64):
        self.sv_vectors = sv_vectors
        self.seen = []
        self.embedder = SimpleNamespace(config={"sv": {"img_size": size}}, street_view=self._sv)

    def _sv(self, images):
        self.seen += [np.asarray(im).shape for im in images]
        return np.ones((len(images), 4), np.float32) / 2


class FakeRes:
    """What the photo and novelty logic read from `Resources`."""

    def __init__(self, sv_vectors=None):
        self.index = FakeIndex(np.zeros((0, 4), np.float32) if sv_vectors is None else sv_vectors)
        self._cache = {}

    def cached(self, name, build):
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- preprocessing


def test_photo_is_cropped_to_a_square_not_squashed():
    res = FakeRes()
    photo = np.zeros((300, 400, 3), np.uint8)
    photo[:, :] = (200, 30, 30)  # red margins left and right
    photo[:, 50:350] = (30, 30, 200)  # the centred 300 x 300 square is blue
    out = logic.prepare_photo(res, photo)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - (30, 30, 200)).max() <= 2  # no red: cropped, not squashed
    logic.embed_image(res, photo)
    assert res.index.seen == [(64, 64, 3)]  # the encoder gets the prepared square


def test_large_photo_is_resized_with_antialiasing():
    res = FakeRes()
    stripes = np.zeros((3000, 4000, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: far above what 64 px can hold
    out = logic.prepare_photo(res, stripes).astype(np.float64)
    assert abs(out.mean() - 127.5) < 6  # the stripes average out to grey ...
    assert out.std() < 8  # ... evenly, with no aliased bands
    naive = stripes[:: 3000 // 64, :: 4000 // 64][:64, :64].astype(np.float64)
    assert naive.mean() == 255  # what sampling without antialiasing sees: all white


# --------------------------------------------------------------------------- novelty


def _clustered_gallery(n=600, dim=32, seed=0, extra=0) -> np.ndarray:
    """n views around 6 places (+ `extra` more views drawn the same way, last)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim))
    vecs = centres[rng.integers(0, 6, n + extra)] + 0.15 * rng.normal(size=(n + extra, dim))
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def test_novelty_flags_a_photo_unlike_the_gallery():
    views = _clustered_gallery(extra=20)
    vecs, new_views = views[:-20], views[-20:]
    res = FakeRes(vecs)
    floor = novelty.gallery_floor(res)
    # leave-one-out: a view's best match is another view, never itself (that would be 1.0)
    assert 0.5 < floor["threshold"] < floor["median"] < 0.999 and floor["sample"] == len(vecs)
    far = np.random.default_rng(1).normal(size=vecs.shape[1]).astype(np.float32)
    far /= np.linalg.norm(far)
    verdict = novelty.assess(res, float((vecs @ far).max()))
    assert verdict["out_of_distribution"]
    text = novelty.message(verdict)
    assert f"{verdict['best']:.2f}" in text and f"{verdict['threshold']:.2f}" in text
    assert "99%" in text and "likely noise" in text
    # a gallery view itself (best similarity 1.0) is in distribution, and so are new views
    # of the same places (all but the odd one, by the 1% rule)
    assert not novelty.assess(res, 1.0)["out_of_distribution"]
    flagged = [
        novelty.assess(res, float((vecs @ v).max()))["out_of_distribution"] for v in new_views
    ]
    assert sum(flagged) <= 1


def test_a_uniform_image_is_flagged_whatever_its_similarity():
    res = FakeRes(_clustered_gallery())
    grey = np.full((64, 64, 3), 128, np.uint8)
    verdict = novelty.assess(res, 0.999, grey)  # as similar as a gallery view
    assert verdict["flat"] and verdict["out_of_distribution"]
    assert "nearly uniform" in novelty.message(verdict)
    photo = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert not novelty.assess(res, 0.999, photo)["out_of_distribution"]


def test_novelty_samples_large_galleries_and_skips_empty_ones():
    assert novelty.gallery_floor(FakeRes(np.zeros((0, 8), np.float32))) is None
    assert novelty.assess(FakeRes(np.zeros((1, 8), np.float32)), 0.3) is None
    vecs = _clustered_gallery(n=5000, dim=16)
    floor = novelty.gallery_floor(FakeRes(vecs))
    assert floor["sample"] == novelty.SAMPLE


def test_search_result_carries_the_verdict(app_paths):
    from app.resources import Settings, open_resources

    res = open_resources(Settings(index=str(app_paths["index"]), world=str(app_paths["world"])))
    view = logic.streetview_image(res, res.gallery.iloc[3])
    result = logic.image_search(res, image=view, k=3)
    assert result["novelty"]["best"] == pytest.approx(1.0, abs=1e-4)
    assert not result["uncertain"]  # a gallery view is not out of distribution
    result = logic.image_search(res, sv_row=res.gallery.iloc[3], k=3)
    assert result["novelty"] is None  # gallery picks are not judged


def test_app_warns_about_an_out_of_distribution_photo(app_env, monkeypatch):
    real = novelty.gallery_floor

    def strict(res):  # every photo below the gallery's floor, as a real photo on the demo model
        return {**real(res), "threshold": 1.01}

    monkeypatch.setattr(novelty, "gallery_floor", strict)
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.radio(key="search_mode").set_value("Upload an image").run()
    photo = np.random.default_rng(3).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    at.file_uploader(key="search_upload").upload("photo.png", _png(photo), "image/png")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert any("unlike every street view the index holds" in w and "1.01" in w for w in warnings)
    assert at.session_state["search"]["uncertain"]


# --------------------------------------------------------------------------- no gallery


@pytest.fixture(scope="module")
def no_gallery_index(app_paths, tmp_path_factory):
    root = tmp_path_factory.mktemp("nogallery")
    return make_own_index(app_paths["index"], root / "index", empty_gallery=True)


def test_index_without_gallery_says_so(no_gallery_index, world, monkeypatch, tmp_path):
    from app import assets

    manifest = json.loads((no_gallery_index / "manifest.json").read_text())
    patch_sources(monkeypatch, world, manifest["source"]["bounds"], native_zoom=3)
    monkeypatch.setattr(assets, "TILES_ROOT", tmp_path / "tiles")
    monkeypatch.setenv("GAIR_INDEX", str(no_gallery_index))
    monkeypatch.delenv("GAIR_WORLD", raising=False)
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.session_state["point"] = (48.85, 2.35)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    infos = [i.value for i in at.info]
    assert sum("This index has no street-view gallery." in i for i in infos) == 2  # both tabs
    at.radio(key="search_mode").set_value("Upload an image").run()
    photo = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    at.file_uploader(key="search_upload").upload("photo.png", _png(photo), "image/png")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Best place" in {m.label for m in at.metric}
    assert at.session_state["search"]["novelty"] is None
    assert any("no street-view gallery" in i.value for i in at.info)
