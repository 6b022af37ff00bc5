"""`gair import-official` on the release's whole `GAIRModel` state dict (both HuggingFace ViT
key layouts), its documented unused tensors, the temperature, the recorded chip size and a
ViT-B-sized import; the shared references are tests/official_reference.py, the small-model
checks tests/test_official.py."""

from __future__ import annotations

import math

import pytest
import torch

from gair import load_model
from gair.checkpoint import read_run_config
from gair.cli import main
from gair.official import DOCUMENTED_UNUSED, import_official, release_lonlat_to_latlon
from gair.run_dir import rs_chip_km
from tests.official_reference import (
    add_gair_model_extras,
    croma_tokens_ref,
    hf_vit_ref,
    location_ref,
    make_release_state,
    nili_ref,
    save_release_checkpoint,
    to_transformers5_layout,
)
from tests.test_official import DEPTH, RS_HEADS, SV_HEADS, _close, _import_error


# -- the release's whole GAIRModel state dict, in both HF ViT key layouts -----------------------
@pytest.fixture(scope="module")
def full_release():
    """(the tensors the references use, the release GAIRModel's whole state dict)."""
    base = make_release_state(sigmas=(1.0, 2.0, 4.0), seed=20)
    return base, add_gair_model_extras(base)


@pytest.mark.parametrize("layout", ["transformers-4", "transformers-5"])
def test_full_release_state_dict_imports_by_default_and_matches(full_release, layout, tmp_path):
    """Every tensor of the release's GAIRModel is mapped or documented as unused: the import
    needs no flag, in either key layout, and every embedding matches the reference."""
    base, full = full_release
    saved = to_transformers5_layout(full) if layout == "transformers-5" else full
    if layout == "transformers-5":
        assert "sv_encoder.layers.1.attention.q_proj.weight" in saved
        assert "sv_encoder.layers.0.mlp.fc2.bias" in saved
        assert not any(k.startswith("sv_encoder.encoder.") for k in saved)
    save_release_checkpoint(saved, tmp_path / "gair.pth")
    report = import_official(tmp_path / "gair.pth", tmp_path / "run")
    assert report["sv_key_layout"] == layout
    unused = report["unused_release_tensors"]
    extras = set(full) - set(base)  # GAIRModel's own tensors, and the CROMA wrapper's 4
    wrapper = {k for k in full if k.startswith(("rs_encoder.layer_norm.", "rs_encoder.head."))}
    assert len(wrapper) == 4 and len(extras - wrapper) == 33
    assert set(unused) == extras - {"logit_scale"}
    assert all(reason for reason in unused.values())
    assert report["tensors_mapped"] + len(unused) == len(saved) == report["tensors_in_checkpoint"]
    assert "criterion.log_scale" not in report["kept_default_tensors"]
    assert report["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-6)
    meta = read_run_config(tmp_path / "run")
    assert meta["source"]["sv_key_layout"] == layout
    assert meta["model"]["loss"]["temperature"] == 0.07
    model = load_model(tmp_path / "run")
    assert model.logit_scale() == pytest.approx(1 / 0.07, rel=1e-6)
    g = torch.Generator().manual_seed(21)
    rs, sv = torch.rand(2, 10, 96, 96, generator=g), torch.randn(2, 3, 224, 224, generator=g)
    lonlat = torch.tensor([[-83.258332, 42.482289], [139.75009, 35.657349]], dtype=torch.float64)
    xy = torch.tensor([[[0.1, -0.3], [0.9, 0.95]], [[-0.7, 0.2], [0.0, 0.0]]])
    with torch.no_grad():
        tokens = model.encode_rs(rs)
        ref_tokens = croma_tokens_ref(base, rs, RS_HEADS, DEPTH)
        _close(tokens.flatten(2).transpose(1, 2), ref_tokens, 1e-4)
        _close(model.encode_rs_global(rs), ref_tokens.mean(1), 1e-4)
        _close(model.encode_sv(sv), hf_vit_ref(base, sv, SV_HEADS, DEPTH), 1e-4)
        latlon = release_lonlat_to_latlon(lonlat)
        _close(model.encode_location(latlon), location_ref(base, lonlat), 1e-4)
        _close(model.point_query(tokens, xy), nili_ref(base, tokens, xy), 1e-4)


def test_documented_unused_names_every_gair_model_only_tensor(full_release):
    base, full = full_release
    undocumented = []
    for key in set(full) - set(base) - {"logit_scale"}:
        if not any(key.startswith(p) if p.endswith(".") else key == p for p in DOCUMENTED_UNUSED):
            undocumented.append(key)
    assert undocumented == []


def test_unknown_tensor_in_the_full_release_layout_is_named(full_release, tmp_path):
    _, full = full_release
    msg = _import_error(tmp_path, {**full, "sar_encoder.proj.weight": torch.zeros(4, 4)})
    assert "unexpected" in msg and "sar_encoder.proj.weight" in msg
    # an unknown part of the transformers 5 layout keeps its own name in the message
    t5 = to_transformers5_layout(full)
    msg = _import_error(tmp_path, {**t5, "sv_encoder.layers.0.attention.q_norm.weight": t5[
        "sv_encoder.layers.0.layernorm_before.weight"]})  # fmt: skip
    assert "sv_encoder.layers.0.attention.q_norm.weight" in msg


def test_transformers5_layout_errors_name_its_own_keys(full_release, tmp_path):
    _, full = full_release
    t5 = to_transformers5_layout(full)
    del t5["sv_encoder.layers.1.mlp.fc1.weight"]
    msg = _import_error(tmp_path, t5)
    assert "missing" in msg and "sv_encoder.layers.1.mlp.fc1.weight" in msg
    # a checkpoint mixing both layouts is refused
    mixed = to_transformers5_layout(full)
    mixed["sv_encoder.encoder.layer.1.intermediate.dense.weight"] = mixed.pop(
        "sv_encoder.layers.1.mlp.fc1.weight"
    )
    assert "mixes the transformers 4 and 5" in _import_error(tmp_path, mixed)


def test_release_logit_scale_becomes_the_model_temperature(tmp_path):
    state = make_release_state(seed=22)
    state["logit_scale"] = torch.tensor(math.log(1 / 0.05))
    save_release_checkpoint(state, tmp_path / "ck.pth")
    report = import_official(tmp_path / "ck.pth", tmp_path / "run")
    assert "logit_scale" not in report["unused_release_tensors"]
    model = load_model(tmp_path / "run")
    assert model.logit_scale() == pytest.approx(20.0, rel=1e-6)
    assert model.config["loss"]["temperature"] == 0.05
    state["logit_scale"] = torch.tensor([1.0, 2.0])
    (tmp_path / "bad").mkdir()
    assert "logit_scale" in _import_error(tmp_path / "bad", state)


def test_import_records_the_rs_chip_ground_size(tmp_path, tiny_run):
    save_release_checkpoint(make_release_state(seed=23), tmp_path / "ck.pth")
    report = import_official(tmp_path / "ck.pth", tmp_path / "run")
    chip = read_run_config(tmp_path / "run")["rs_chip"]
    assert chip == report["rs_chip"]
    assert chip["km"] == pytest.approx(2.24) and chip["px"] == 96
    assert chip["shape"] == "ground-square" and chip["source_gsd_m"] == 10.0
    assert chip["source_px"] == 224
    assert rs_chip_km(read_run_config(tmp_path / "run")) == pytest.approx(2.24)
    import_official(tmp_path / "ck.pth", tmp_path / "run", force=True, chip_km=1.8)
    meta = read_run_config(tmp_path / "run")
    assert rs_chip_km(meta) == 1.8 and meta["rs_chip"]["m_per_px"] == pytest.approx(18.75)
    assert rs_chip_km(meta, chip_km=3.0) == 3.0  # --chip-km wins
    with pytest.raises(ValueError, match="--chip-km"):
        import_official(tmp_path / "ck.pth", tmp_path / "run", force=True, chip_km=-1)
    # a run dir written before rs_chip existed still loads; asking for the size is a clear error
    old = read_run_config(tiny_run)
    assert "rs_chip" not in old
    load_model(tiny_run)
    with pytest.raises(ValueError, match="pass --chip-km"):
        rs_chip_km(old, where=str(tiny_run))
    assert rs_chip_km(old, chip_km=2.0) == 2.0
    with pytest.raises(ValueError, match="positive"):
        rs_chip_km({"rs_chip": {"km": 0}})


def test_cli_import_official_chip_km(tmp_path, capsys):
    save_release_checkpoint(make_release_state(seed=24), tmp_path / "ck.pth")
    out = tmp_path / "run"
    argv = ["import-official", str(tmp_path / "ck.pth"), "--out", str(out), "--chip-km", "1.5"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "RS chip: 1.5 km" in text and "transformers-4 key layout" in text
    assert read_run_config(out)["rs_chip"]["km"] == 1.5


@pytest.mark.slow
def test_real_size_import_and_forward(tmp_path):
    """ViT-B sizes (RS 768/12/16 heads, SV 768/12/12 heads at 224 px, location 1024 hidden,
    256 frequencies): import, then one forward pass of each embedding against the reference."""
    torch.manual_seed(0)
    state = make_release_state(
        rs_width=768, rs_depth=12, sv_width=768, sv_depth=12, loc_hidden=1024, n_freq=256,
        sigmas=(1.0, 2.0, 4.0), seed=15,
    )  # fmt: skip
    save_release_checkpoint(state, tmp_path / "ck.pth")
    report = import_official(tmp_path / "ck.pth", tmp_path / "run")
    s = state
    assert report["sizes"]["rs"] == {
        "width": 768,
        "depth": 12,
        "heads": 16,
        "patch_size": 8,
        "img_size": 96,
    }
    assert report["sizes"]["sv"]["img_size"] == 224 and report["sizes"]["embed_dim"] == 768
    model = load_model(tmp_path / "run")
    g = torch.Generator().manual_seed(16)
    rs, sv = torch.rand(1, 10, 96, 96, generator=g), torch.randn(1, 3, 224, 224, generator=g)
    with torch.no_grad():
        tokens = model.encode_rs(rs)
        ref_tokens = croma_tokens_ref(s, rs, 16, 12)
        _close(tokens.flatten(2).transpose(1, 2), ref_tokens, 1e-4)
        _close(tokens.mean((2, 3)), ref_tokens.mean(1), 1e-5)
        _close(model.encode_sv(sv), hf_vit_ref(s, sv, 12, 12))
        lonlat = torch.tensor(
            [[-83.258332, 42.482289], [139.75009, 35.657349]], dtype=torch.float64
        )
        _close(model.encode_location(release_lonlat_to_latlon(lonlat)), location_ref(s, lonlat))
        xy = torch.tensor([[[0.1, -0.3], [0.9, 0.95]]])
        _close(model.point_query(tokens, xy), nili_ref(s, tokens, xy), 1e-4)
