"""The GAIR module: public API shapes, losses, training signal, checkpoints, bad input."""

import json

import pytest
import torch

from gair import build_model, load_model, save_model
from gair.config import resolve_config
from gair.losses import CoordinateQueue


def toy_batch(model, b=8, seed=0):
    """A batch where every modality is a function of the location, so alignment is learnable."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    latlon = torch.stack(
        [torch.rand(b, generator=g) * 120 - 60, torch.rand(b, generator=g) * 340 - 170], -1
    )
    code = torch.cat([torch.sin(torch.deg2rad(latlon) * k) for k in (1, 2)], -1)  # [B, 4]
    rs_size, sv_size = cfg["rs"]["img_size"], cfg["sv"]["img_size"]
    n_bands = len(cfg["rs"]["bands"])
    rs = code[:, :, None, None].repeat(1, n_bands // 4 + 1, rs_size, rs_size)[:, :n_bands]
    sv = code[:, :3, None, None].expand(b, 3, sv_size, sv_size).clone()
    rs = rs + 0.1 * torch.randn(rs.shape, generator=g)
    sv = sv + 0.1 * torch.randn(sv.shape, generator=g)
    half = torch.full((b,), 0.5, dtype=torch.float64)
    lat, lon = latlon[:, 0].double(), latlon[:, 1].double()
    bbox = torch.stack([lon - half, lat - half, lon + half, lat + half], -1)
    return {"rs": rs.float(), "rs_bbox": bbox, "sv": sv.float(), "latlon": latlon.double()}


def test_public_api_shapes():
    model = build_model("tiny").eval()
    batch = toy_batch(model, b=3)
    e = model.config["embed_dim"]
    tokens = model.encode_rs(batch["rs"])
    assert tokens.shape == (3, 192, 8, 8)
    points = batch["latlon"].unsqueeze(1).repeat(1, 5, 1)
    assert model.query_rs(tokens, batch["rs_bbox"], points).shape == (3, 5, e)
    assert model.encode_sv(batch["sv"]).shape == (3, e)
    assert model.encode_location(batch["latlon"]).shape == (3, e)
    assert model.encode_location(torch.zeros(2, 4, 2)).shape == (2, 4, e)


def test_loss_terms_finite_and_total_falls():
    torch.manual_seed(0)
    model = build_model({"base": "tiny", "loss": {"queue_size": 64}})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    batch = toy_batch(model, b=16)
    losses = []
    for _ in range(30):
        out = model(batch)
        for key in ("incl", "secl_sv", "secl_rs", "loss"):
            assert torch.isfinite(out[key]), key
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert int(model.criterion.queue.count) == 64  # queue filled to its size


def test_weighted_total():
    model = build_model(
        {"base": "tiny", "loss": {"weights": {"incl": 2.0, "secl_sv": 0.0, "secl_rs": 1.0}}}
    )
    out = model(toy_batch(model, b=4))
    torch.testing.assert_close(out["loss"], 2 * out["incl"] + out["secl_rs"])


def test_learnable_temperature_gets_gradient():
    model = build_model({"base": "tiny", "loss": {"learn_temperature": True}})
    model(toy_batch(model, b=4))["loss"].backward()
    assert model.criterion.log_scale.grad is not None


def test_queue_is_fifo():
    q = CoordinateQueue(4)
    q.push(torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    assert q.filled().shape == (3, 2)
    q.push(torch.tensor([[4.0, 4.0], [5.0, 5.0]]))
    assert sorted(q.filled()[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model({"base": "tiny", "inr": {"decoder": "mlp"}}).eval()
    batch = toy_batch(model, b=2)
    save_model(model, tmp_path / "run", extra={"metrics": {"r@10": 0.5}})
    loaded = load_model(tmp_path / "run")
    assert not loaded.training
    with torch.no_grad():
        for fn in ("encode_sv", "encode_location"):
            key = "sv" if fn == "encode_sv" else "latlon"
            assert torch.equal(getattr(model, fn)(batch[key]), getattr(loaded, fn)(batch[key]))
        t1, t2 = model.encode_rs(batch["rs"]), loaded.encode_rs(batch["rs"])
        assert torch.equal(t1, t2)
        pts = batch["latlon"].unsqueeze(1)
        assert torch.equal(
            model.query_rs(t1, batch["rs_bbox"], pts), loaded.query_rs(t2, batch["rs_bbox"], pts)
        )
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["metrics"] == {"r@10": 0.5} and meta["model"]["inr"]["decoder"] == "mlp"
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_saving_the_same_weights_gives_the_same_bytes(tmp_path):
    """The weights' SHA-256 is the checkpoint's identity (indexes and eval results record it):
    saving unchanged weights again must not change it."""
    torch.manual_seed(0)
    model = build_model("tiny")
    hashes = {
        json.loads((save_model(model, tmp_path / f"run{i}") / "config.json").read_text())[
            "weights_sha256"
        ]
        for i in range(8)  # safetensors wrote a two-entry metadata map in random order
    }
    assert len(hashes) == 1


def test_truncated_or_tampered_weights_are_rejected(tmp_path):
    model = build_model("tiny")
    run = save_model(model, tmp_path / "run")
    weights = run / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or modified"):
        load_model(run)
    with pytest.raises(ValueError, match="cannot read"):
        load_model(run, verify=False)
    tampered = bytearray(data)
    tampered[-10] ^= 0xFF
    weights.write_bytes(bytes(tampered))
    with pytest.raises(ValueError, match="truncated or modified"):
        load_model(run)


def test_mismatched_config_is_rejected(tmp_path):
    run = save_model(build_model("tiny"), tmp_path / "run")
    meta = json.loads((run / "config.json").read_text())
    meta["model"]["embed_dim"] = 128
    (run / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="shape mismatches"):
        load_model(run, verify=False)


def test_missing_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path / "nope")


@pytest.mark.parametrize(
    "override, needle",
    [
        ({"embed_dimm": 3}, "embed_dimm"),
        ({"rs": {"img_size": 30}}, "multiple"),
        ({"inr": {"mode": "nearest"}}, "inr.mode"),
        ({"loss": {"weights": {"foo": 1.0}}}, "foo"),
        ({"loss": {"temperature": -1}}, "temperature"),
        ({"rs": {"depth": 0}}, "rs.depth"),
    ],
)
def test_config_validation_names_the_problem(override, needle):
    with pytest.raises(ValueError, match=needle):
        resolve_config({"base": "tiny", **override})


def test_unknown_preset():
    with pytest.raises(ValueError, match="huge"):
        build_model("huge")


def test_bad_inputs_raise_value_error():
    model = build_model("tiny")
    batch = toy_batch(model, b=2)
    with pytest.raises(ValueError, match="3 bands"):
        model.encode_rs(batch["rs"][:, :3])
    with pytest.raises(ValueError, match="48x48"):
        model.encode_sv(torch.zeros(1, 3, 48, 48))
    with pytest.raises(ValueError, match="NaN"):
        model.encode_rs(torch.full((1, 4, 32, 32), float("nan")))
    with pytest.raises(ValueError, match="nan"):
        model.encode_location(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="95"):
        model.encode_location(torch.tensor([[95.0, 0.0]]))
    bad = dict(batch, latlon=torch.tensor([[100.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="100"):
        model(bad)
    with pytest.raises(ValueError, match="missing keys"):
        model({"rs": batch["rs"]})


def test_paper_config_forward_at_batch_one():
    model = build_model("paper").eval()
    batch = toy_batch(model, b=1)
    with torch.no_grad():
        tokens = model.encode_rs(batch["rs"])
        assert tokens.shape == (1, 768, 12, 12)
        z = model.query_rs(tokens, batch["rs_bbox"], batch["latlon"].unsqueeze(1))
        s = model.encode_sv(batch["sv"])
    assert z.shape == (1, 1, 768) and s.shape == (1, 768)
    assert torch.isfinite(z).all() and torch.isfinite(s).all()
