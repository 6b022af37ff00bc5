"""The INR point query (NILI): conventions, cell-centre exactness, continuity, baselines."""

import numpy as np
import pytest
import torch

from gair import build_model
from gair.inr import NILI, CenterPoolQuery, GridSampleQuery, cell_centres


def _tokens(b=2, d=8, h=6, w=5, seed=0):
    return torch.randn(b, d, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("decoder", ["linear", "mlp"])
@pytest.mark.parametrize("sampling", ["exact", "official"])
def test_cell_centre_gives_that_cells_decoded_value(decoder, sampling):
    torch.manual_seed(0)
    tokens = _tokens()
    nili = NILI(8, 16, decoder=decoder, mlp_hidden=(32,), sampling=sampling)
    h, w = tokens.shape[2:]
    centres = cell_centres(h, w).reshape(1, -1, 2).expand(2, -1, -1)
    out = nili(tokens, centres).reshape(2, h, w, -1)
    expected = nili.decode_cells(tokens)
    if sampling == "official":  # the release blends edge cells with their neighbours; interior only
        out, expected = out[:, 1:-1, 1:-1], expected[:, 1:-1, 1:-1]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_exact_and_official_sampling_agree_in_the_interior():
    torch.manual_seed(1)
    tokens = _tokens()
    exact = NILI(8, 16, sampling="exact")
    official = NILI(8, 16, sampling="official")
    official.load_state_dict(exact.state_dict())
    # points between the outermost cell centres, away from exact ties
    xy = (torch.rand(2, 200, 2) * 2 - 1) * torch.tensor([1 - 1 / 5, 1 - 1 / 6]) * 0.999
    torch.testing.assert_close(exact(tokens, xy), official(tokens, xy), atol=1e-5, rtol=1e-5)


def test_north_west_query_depends_on_north_west_cells_only():
    torch.manual_seed(2)
    tokens = _tokens(b=1, h=8, w=8).requires_grad_(True)
    nili = NILI(8, 16)
    xy = torch.tensor([[[-0.95, -0.95]]])  # near the north-west corner
    nili(tokens, xy).sum().backward()
    grad = tokens.grad.abs().sum(1)[0]  # [h, w]
    assert grad[:3, :3].sum() > 0
    assert grad[4:, :].sum() == 0 and grad[:, 4:].sum() == 0  # nothing from the south or east


def test_output_is_continuous_across_cell_boundaries():
    torch.manual_seed(3)
    tokens = _tokens(b=1, h=4, w=4)
    nili = NILI(8, 16, decoder="mlp", mlp_hidden=(64, 64))
    x = torch.linspace(-0.99, 0.99, 2001)
    xy = torch.stack([x, torch.full_like(x, 0.1234)], -1).unsqueeze(0)
    out = nili(tokens, xy)[0]
    steps = (out[1:] - out[:-1]).norm(dim=-1)
    assert steps.max() < 5 * steps.median() + 1e-6


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_grid_sample_baselines_hit_cell_values_at_centres(mode):
    tokens = _tokens(b=1, h=4, w=4)
    query = GridSampleQuery(8, 8, mode)
    with torch.no_grad():
        query.proj.weight.copy_(torch.eye(8))
        query.proj.bias.zero_()
    centres = cell_centres(4, 4).reshape(1, -1, 2)
    out = query(tokens, centres)
    torch.testing.assert_close(out, tokens.flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_center_pool_ignores_the_point():
    tokens = _tokens()
    out = CenterPoolQuery(8, 4)(tokens, torch.rand(2, 7, 2) * 2 - 1)
    assert torch.allclose(out[:, :1].expand_as(out), out)


def test_query_rs_uses_geographic_position():
    """query_rs maps lat/lon through the bbox: the NW corner point equals a direct NILI query at (-1,-1)."""
    model = build_model("tiny").eval()
    tokens = _tokens(b=1, d=model.rs_encoder.width, h=8, w=8)
    bbox = torch.tensor([[10.0, 40.0, 12.0, 42.0]])
    latlon = torch.tensor([[[42.0, 10.0], [41.0, 11.0]]])
    with torch.no_grad():
        got = model.query_rs(tokens, bbox, latlon)
        want = model.point_query(tokens, torch.tensor([[[-1.0, -1.0], [0.0, 0.0]]]))
    torch.testing.assert_close(got, want)


def test_query_rs_rejects_points_outside_the_chip():
    model = build_model("tiny")
    tokens = _tokens(b=1, d=model.rs_encoder.width, h=8, w=8)
    with pytest.raises(ValueError, match="outside its chip"):
        model.query_rs(
            tokens, torch.tensor([[10.0, 40.0, 12.0, 42.0]]), torch.tensor([[[43.0, 11.0]]])
        )


def test_query_rs_across_antimeridian():
    model = build_model("tiny").eval()
    tokens = _tokens(b=1, d=model.rs_encoder.width, h=8, w=8)
    bbox = torch.tensor([[179.0, -1.0, -179.0, 1.0]])
    with torch.no_grad():
        east_of_180 = model.query_rs(tokens, bbox, torch.tensor([[[0.0, -179.5]]]))
        direct = model.point_query(tokens, torch.tensor([[[0.5, 0.0]]]))
    torch.testing.assert_close(east_of_180, direct)


def test_linear_fast_path_matches_explicit_decoder():
    torch.manual_seed(4)
    tokens = _tokens()
    nili = NILI(8, 16)
    xy = torch.rand(2, 33, 2) * 2 - 1
    fast = nili(tokens, xy)
    # explicit path: same weights in an equivalent Sequential (not an nn.Linear -> general path)
    explicit = NILI(8, 16)
    explicit.decoder = torch.nn.Sequential(nili.decoder)
    np.testing.assert_allclose(
        fast.detach().numpy(), explicit(tokens, xy).detach().numpy(), atol=1e-5
    )
