"""`gair import-official` and the re-implemented release modules, against independent
references written from GAIR-NOTES.md (tests/official_reference.py). No real weights needed:
checkpoints in the release's layout are built from random tensors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gair import load_model
from gair.checkpoint import read_run_config
from gair.cli import main
from gair.encoders.croma import CromaViT, alibi_2d_bias, alibi_slopes
from gair.encoders.release_location import equal_earth_release_order
from gair.inr import cell_centres
from gair.official import (
    import_official,
    latlon_to_release_lonlat,
    release_bbox_to_wsen,
    release_lonlat_to_latlon,
    wsen_to_release_bbox,
)
from tests.official_reference import (
    alibi_bias_ref,
    alibi_slopes_ref,
    chip_xy_ref,
    croma_tokens_ref,
    equal_earth_ref,
    hf_vit_ref,
    location_from_v_ref,
    location_ref,
    make_release_state,
    nili_ref,
    save_release_checkpoint,
)

ATOL = 1e-5
RS_HEADS, SV_HEADS, DEPTH = 16, 12, 2  # the importer's default head counts; width 48 fits both


@pytest.fixture(scope="module")
def release():
    """A small random release checkpoint (low RFF sigmas, see test_location_*) and its import."""
    state = make_release_state(sigmas=(1.0, 2.0, 4.0), seed=1)
    return state


@pytest.fixture(scope="module")
def imported(release, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("official")
    save_release_checkpoint(release, tmp / "gair_release.pth")
    report = import_official(tmp / "gair_release.pth", tmp / "run")
    return report, load_model(tmp / "run"), tmp


def _close(ours: torch.Tensor, ref: torch.Tensor, atol: float = ATOL) -> None:
    diff = (ours.detach().double() - ref).abs().max().item()
    assert diff < atol, f"max abs difference {diff:.3g} >= {atol}"


# -- architecture facts ---------------------------------------------------------------------
def test_alibi_slopes_are_the_geometric_sequence():
    assert alibi_slopes(16) == pytest.approx([2.0 ** (-0.5 * k) for k in range(1, 17)], rel=1e-12)
    assert alibi_slopes(4) == pytest.approx(alibi_slopes_ref(4), rel=1e-12)
    # non-powers of two (ALiBi's rule): the 8-head slopes, then every other 16-head slope
    assert alibi_slopes(12) == pytest.approx(
        [2.0 ** (-k) for k in range(1, 9)] + [2.0 ** (-0.5 * k) for k in (1, 3, 5, 7)], rel=1e-12
    )


def test_alibi_bias_is_minus_slope_times_euclidean_patch_distance():
    ours = alibi_2d_bias(4, 5)
    assert ours.shape == (4, 25, 25) and ours.dtype == torch.float32
    _close(ours, alibi_bias_ref(4, 5), 1e-6)
    # patch 0 = (row 0, col 0), patch 6 = (row 1, col 1): distance sqrt(2); head 0 slope 2^-2
    assert ours[0, 0, 6].item() == pytest.approx(-(2.0**-2) * math.sqrt(2), rel=1e-6)
    assert (ours.diagonal(dim1=1, dim2=2) == 0).all()


def test_patches_flatten_channel_major_in_row_major_order():
    enc = CromaViT(
        {"bands": ["a", "b"], "img_size": 16, "patch_size": 8, "width": 8, "depth": 1, "heads": 2}
    )
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(1, 2, 16, 16)
    patches = enc.patchify(x)
    assert patches.shape == (1, 4, 128)
    assert torch.equal(patches, torch.nn.functional.unfold(x, 8, stride=8).transpose(1, 2))
    # token 1 is row 0, col 1; its first 64 values are channel 0's 8x8 pixels row by row
    assert torch.equal(patches[0, 1, :64], x[0, 0, :8, 8:16].reshape(-1))
    assert torch.equal(patches[0, 1, 64:], x[0, 1, :8, 8:16].reshape(-1))
    assert torch.equal(patches[0, 2, :8], x[0, 0, 8, :8])  # token 2 = row 1, col 0


# -- the import -----------------------------------------------------------------------------
def test_import_writes_a_run_dir_and_reports_unused(imported, release):
    report, model, tmp = imported
    unused = report["unused_release_tensors"]
    assert sorted(unused) == [
        "rs_encoder.s2_encoder.head.bias",
        "rs_encoder.s2_encoder.head.weight",
        "rs_encoder.s2_encoder.layer_norm.bias",
        "rs_encoder.s2_encoder.layer_norm.weight",
    ]
    assert report["tensors_in_checkpoint"] == len(release)
    assert report["tensors_mapped"] + len(unused) == len(release)
    assert "criterion.queue.latlon" in report["kept_default_tensors"]
    meta = read_run_config(tmp / "run")
    assert "CC BY-NC 4.0" in meta["licence"]
    assert meta["source"]["kind"] == "gair-official-release"
    assert sorted(meta["unused_release_tensors"]) == sorted(unused)
    cfg = meta["model"]
    assert cfg["name"] == "official" and cfg["embed_dim"] == 48
    assert cfg["rs"]["encoder"] == "croma_vit" and cfg["rs"]["depth"] == DEPTH
    assert cfg["sv"]["encoder"] == "hf_vit" and cfg["sv"]["img_size"] == 224
    assert cfg["inr"] == {**cfg["inr"], "mode": "nili", "decoder": "linear", "sampling": "official"}
    assert cfg["preprocess"]["rs"]["kind"] == "s2-quantize"
    # the weights are the checkpoint's
    sd = model.state_dict()
    assert torch.equal(sd["sv_proj.weight"], release["optical_proj.weight"])
    assert torch.equal(sd["point_query.decoder.bias"], release["imnet.bias"])
    assert torch.equal(
        sd["location_encoder.branches.2.mlp.4.weight"],
        release["location_encoder.LocEnc2.capsule.5.weight"],
    )
    assert torch.equal(
        sd["rs_encoder.transformer.layers.1.1.net.3.weight"],
        release["rs_encoder.s2_encoder.transformer.layers.1.1.net.3.weight"],
    )


def test_rs_tokens_and_global_embedding_match_reference(imported, release):
    _, model, _ = imported
    rs = torch.rand(2, 10, 96, 96, generator=torch.Generator().manual_seed(0))
    ref = croma_tokens_ref(release, rs, RS_HEADS, DEPTH)  # [B, 144, D]
    with torch.no_grad():
        grid = model.encode_rs(rs)
        assert grid.shape == (2, 48, 12, 12)
        _close(grid.flatten(2).transpose(1, 2), ref)  # token grid, row-major
        _close(model.encode_rs_global(rs), ref.mean(1))  # RS embedding = mean of tokens


def test_sv_embedding_matches_reference(imported, release):
    _, model, _ = imported
    sv = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model.encode_sv(sv)
        _close(ours, hf_vit_ref(release, sv, SV_HEADS, DEPTH))
        proj = release["optical_proj.weight"].double()
        ref_proj = ours.double() @ proj.T + release["optical_proj.bias"].double()
        _close(model.project_sv(ours), ref_proj)


def test_location_embedding_matches_reference(imported, release):
    _, model, _ = imported
    g = torch.Generator().manual_seed(2)
    lonlat = torch.stack(
        [
            torch.rand(300, generator=g, dtype=torch.float64) * 360 - 180,
            torch.rand(300, generator=g, dtype=torch.float64) * 178 - 89,
        ],
        -1,
    )
    latlon = release_lonlat_to_latlon(lonlat)
    with torch.no_grad():
        _close(model.encode_location(latlon), location_ref(release, lonlat))


def test_location_projection_and_high_frequency_branches(tmp_path):
    """Equal Earth (x, y) from (lon, lat) to float32 accuracy; then, at the release's real RFF
    scales (sigma up to 2^8), the branch structure (cos|sin order, 2 pi, capsule/head mapping,
    sum). float32 cos/sin arguments reach ~1e3 rad there, so any float32 implementation carries
    ~1e-4 rad of round-off against a float64 reference: both sides get the same projection."""
    g = torch.Generator().manual_seed(3)
    lat = torch.rand(500, generator=g, dtype=torch.float64) * 180 - 90
    lon = torch.rand(500, generator=g, dtype=torch.float64) * 360 - 180
    v = equal_earth_release_order(torch.stack([lat, lon], -1).float())
    _close(v, equal_earth_ref(lon, lat), 5e-7)
    # known value: (lat 0, lon 180) -> x = 2 sqrt(3) pi / (3 A1) * 66.50336/180, y = 0
    v0 = equal_earth_release_order(torch.tensor([[0.0, 180.0]]))
    assert v0[0, 0].item() == pytest.approx(
        2 * math.sqrt(3) * math.pi / (3 * 1.340264) * 66.50336 / 180, rel=1e-6
    )
    assert v0[0, 1].item() == 0.0
    state = make_release_state(sigmas=(1.0, 16.0, 256.0), seed=4)
    save_release_checkpoint(state, tmp_path / "ck.pth")
    import_official(tmp_path / "ck.pth", tmp_path / "run")
    branches = load_model(tmp_path / "run").location_encoder.branches
    with torch.no_grad():
        ours = sum(branch(v) for branch in branches)
    _close(ours, location_from_v_ref(state, v), 2e-3)


def test_nili_matches_reference_anywhere(imported, release):
    _, model, _ = imported
    g = torch.Generator().manual_seed(5)
    tokens = torch.randn(2, 48, 12, 12, generator=g)
    xy = torch.rand(2, 200, 2, generator=g) * 2 - 1
    edges = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 0.3], [0.99, -0.999], [0.0, 0.0]])
    # interior cell centres (at the centres of the outermost cells the release's weights are
    # all ~1e-9 and depend on float round-off: see test_nili_at_the_centre_of_an_edge_cell)
    centres = cell_centres(12, 12)[1:-1, 1:-1].reshape(-1, 2)[::5]
    xy = torch.cat([xy, edges.expand(2, -1, -1), centres.expand(2, -1, -1)], 1)
    with torch.no_grad():
        _close(model.point_query(tokens, xy), nili_ref(release, tokens, xy))


def test_nili_weights_at_a_cell_centre_and_between_cells(imported, release):
    _, model, _ = imported
    g = torch.Generator().manual_seed(6)
    tokens = torch.randn(1, 48, 12, 12, generator=g)
    unfolded = torch.nn.functional.unfold(tokens.double(), 3, padding=1)  # [1, 9D, 144]
    w, b = release["imnet.weight"].double(), release["imnet.bias"].double()

    def decode(i, j, rel):
        return (
            torch.cat([unfolded[0, :, i * 12 + j], torch.tensor(rel, dtype=torch.float64)]) @ w.T
            + b
        )

    centre = cell_centres(12, 12)  # [h, w, 2] (x, y)
    with torch.no_grad():
        # at an interior cell centre the ensemble collapses onto that cell, relative coords 0
        out = model.point_query(tokens, centre[4, 7].view(1, 1, 2))
        _close(out[0, 0], decode(4, 7, [0.0, 0.0]))
        # halfway between 4 centres: equal weights, relative coords +-1 (one cell = 2 units)
        mid = (centre[4, 7] + centre[5, 8]) / 2
        out = model.point_query(tokens, mid.view(1, 1, 2))
        ref = (
            decode(4, 7, [1.0, 1.0])
            + decode(4, 8, [-1.0, 1.0])
            + decode(5, 7, [1.0, -1.0])
            + decode(5, 8, [-1.0, -1.0])
        ) / 4
        _close(out[0, 0], ref)


def test_nili_at_the_centre_of_an_edge_cell(imported, release):
    """In the last column both x-shifts clamp onto the same cell, so all four relative x are
    ~0 and the blend weights are ratios of tiny areas (+1e-9). Just east of the centre (by more
    than float round-off) the query gets the cell's own value, as the reference does; just west
    it blends with the western neighbour bilinearly."""
    _, model, _ = imported
    tokens = torch.randn(1, 48, 12, 12, generator=torch.Generator().manual_seed(9))
    x, y = cell_centres(12, 12)[5, 11].tolist()
    xy = torch.tensor([[[x - 1e-4, y], [x + 1e-4, y]]])
    with torch.no_grad():
        out = model.point_query(tokens, xy)
    _close(out, nili_ref(release, tokens, xy))
    unfolded = torch.nn.functional.unfold(tokens.double(), 3, padding=1)[0, :, 5 * 12 + 11]
    w, b = release["imnet.weight"].double(), release["imnet.bias"].double()
    own = torch.cat([unfolded, torch.tensor([1e-4 * 12, 0.0], dtype=torch.float64)]) @ w.T + b
    _close(out[0, 1], own, 1e-4)


def test_query_rs_with_release_coordinates(imported, release):
    """A point and bbox in the release's conventions, converted at the boundary, query the
    same chip position the release would."""
    _, model, _ = imported
    rel_bbox = [-83.2764319522036, 42.4883366452283, -83.25433339621425, 42.47207713858574]
    lon, lat = -83.258332, 42.482289
    tokens = torch.randn(1, 48, 12, 12, generator=torch.Generator().manual_seed(7))
    bbox = torch.as_tensor(release_bbox_to_wsen(rel_bbox)).unsqueeze(0)
    latlon = torch.as_tensor(release_lonlat_to_latlon([lon, lat])).view(1, 1, 2)
    with torch.no_grad():
        out = model.query_rs(tokens, bbox, latlon)
    _close(out[0], nili_ref(release, tokens, chip_xy_ref(lon, lat, rel_bbox).unsqueeze(0))[0])


def test_boundary_converters():
    assert release_lonlat_to_latlon([10.0, 50.0]).tolist() == [50.0, 10.0]
    assert latlon_to_release_lonlat([[50.0, 10.0]]).tolist() == [[10.0, 50.0]]
    release_bbox = [10.0, 51.0, 11.0, 50.0]  # lon_min, lat_max, lon_max, lat_min
    assert release_bbox_to_wsen(release_bbox).tolist() == [10.0, 50.0, 11.0, 51.0]
    assert wsen_to_release_bbox([10.0, 50.0, 11.0, 51.0]).tolist() == release_bbox
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(release_lonlat_to_latlon(t), t.flip(-1))
    with pytest.raises(ValueError, match="south < north"):
        release_bbox_to_wsen([10.0, 50.0, 11.0, 51.0])  # given in our order by mistake
    with pytest.raises(ValueError, match="latitude"):
        release_lonlat_to_latlon([50.0, 100.0])  # (lat, lon) given by mistake


# -- variants and errors --------------------------------------------------------------------
def test_plain_state_dict_and_liif_style_imnet_keys(tmp_path):
    state = make_release_state(seed=8, extras=False)
    state["imnet.layers.0.weight"] = state.pop("imnet.weight")
    state["imnet.layers.0.bias"] = state.pop("imnet.bias")
    save_release_checkpoint(state, tmp_path / "ck.pth", prefix="", wrap=False)
    report = import_official(tmp_path / "ck.pth", tmp_path / "run")
    assert report["unused_release_tensors"] == {}
    model = load_model(tmp_path / "run")
    assert torch.equal(model.point_query.decoder.weight, state["imnet.layers.0.weight"])


def _import_error(tmp_path, state, **kwargs) -> str:
    save_release_checkpoint(state, tmp_path / "ck.pth")
    with pytest.raises(ValueError) as err:
        import_official(tmp_path / "ck.pth", tmp_path / "run", **kwargs)
    assert not (tmp_path / "run" / "config.json").exists()
    return str(err.value)


def test_missing_tensor_is_named(tmp_path):
    state = make_release_state(seed=9)
    del state["rs_encoder.s2_encoder.transformer.layers.1.0.to_qkv.weight"]
    msg = _import_error(tmp_path, state)
    assert "missing" in msg and "rs_encoder.s2_encoder.transformer.layers.1.0.to_qkv.weight" in msg


def test_mis_shaped_tensor_is_named(tmp_path):
    state = make_release_state(seed=10)
    state["sv_encoder.pooler.dense.weight"] = torch.zeros(48, 47)
    msg = _import_error(tmp_path, state)
    assert "mis-shaped" in msg and "sv_encoder.pooler.dense.weight" in msg


def test_unexpected_tensor_is_an_error_unless_declared_unused(tmp_path):
    state = make_release_state(seed=11)
    state["sar_head.weight"] = torch.zeros(3, 48)
    msg = _import_error(tmp_path, state)
    assert "unexpected" in msg and "sar_head.weight" in msg and "--unused-prefix" in msg
    report = import_official(tmp_path / "ck.pth", tmp_path / "run", unused_prefixes=["sar_head."])
    assert "sar_head.weight" in report["unused_release_tensors"]


def test_a_final_norm_not_in_the_notes_is_unexpected(tmp_path):
    state = make_release_state(seed=12)
    state["rs_encoder.s2_encoder.transformer.norm_out.weight"] = torch.ones(48)
    msg = _import_error(tmp_path, state)
    assert "transformer.norm_out.weight" in msg


def test_pickle_that_weights_only_refuses(tmp_path):
    class Payload:  # unpickling it would call print(): harmless, and refused anyway
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"model": {"x": torch.zeros(1)}, "extra": Payload()}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        import_official(tmp_path / "bad.pth", tmp_path / "run")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        import_official(tmp_path / "junk.pth", tmp_path / "run")
    with pytest.raises(FileNotFoundError):
        import_official(tmp_path / "absent.pth", tmp_path / "run")


def test_head_counts_must_divide_the_width(tmp_path):
    state = make_release_state(sv_width=64, seed=13)  # 12 SV heads do not divide 64
    msg = _import_error(tmp_path, state)
    assert "--sv-heads" in msg
    report = import_official(tmp_path / "ck.pth", tmp_path / "run", sv_heads=8)
    assert report["sizes"]["sv"]["heads"] == 8 and report["sizes"]["embed_dim"] == 64


def test_cli_import_official(tmp_path, capsys):
    save_release_checkpoint(make_release_state(seed=14), tmp_path / "ck.pth")
    out = tmp_path / "run"
    assert main(["import-official", str(tmp_path / "ck.pth"), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run_dir"] == str(out) and len(report["unused_release_tensors"]) == 4
    # a second import into the same run dir needs --force
    assert main(["import-official", str(tmp_path / "ck.pth"), "--out", str(out), "--json"]) == 2
    assert "--force" in json.loads(capsys.readouterr().out)["error"]
    assert main(["import-official", str(tmp_path / "ck.pth"), "--out", str(out), "--force"]) == 0
    text = capsys.readouterr().out
    assert "rs_encoder.s2_encoder.layer_norm.weight" in text and "CC BY-NC 4.0" in text
    assert main(["import-official", str(tmp_path / "nope.pth"), "--out", str(out)]) == 2
