"""The posterior-median answer to "where was this view taken?" (gair.geolocate)."""

import numpy as np
import pytest
import torch

from gair.geo import haversine_km
from gair.geolocate import geographic_median, latlon_to_xyz, locate, spherical_median, xyz_to_latlon


def test_latlon_xyz_round_trip_across_the_antimeridian_and_poles():
    latlon = torch.tensor(
        [[0.0, 179.5], [0.0, -179.5], [89.0, 10.0], [-45.0, -90.0]], dtype=torch.float64
    )
    back = xyz_to_latlon(latlon_to_xyz(latlon) * 3.0)  # any vector length
    assert haversine_km(back, latlon).max() < 1e-6


def test_spherical_median_is_the_middle_and_respects_a_dominant_weight():
    latlon = torch.tensor([[0.0, -10.0], [0.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    weights = torch.tensor([[1.0, 1.0, 1.0], [0.6, 0.2, 0.2]], dtype=torch.float64)
    median = xyz_to_latlon(spherical_median(latlon_to_xyz(latlon), weights))
    assert haversine_km(median[0], latlon[1]).item() < 1e-3  # the middle point
    # a point holding more than half of the weight is the weighted median (Weiszfeld's rule)
    assert haversine_km(median[1], latlon[0]).item() < 1.0


def test_geographic_median_crosses_the_antimeridian():
    pts = np.array([[0.0, 179.0], [0.0, -179.0], [1.0, 180.0], [-1.0, 180.0]])
    lat, lon = geographic_median(pts)
    assert abs(lat) < 1e-6 and abs(abs(lon) - 180.0) < 1e-6  # not the 0 E of naive averaging


def test_a_confident_posterior_answers_the_best_entry():
    gallery_latlon = torch.tensor([[48.9, 2.3], [35.7, 139.7], [-33.9, 151.2]], dtype=torch.float64)
    gallery_emb = torch.eye(3)
    query = torch.tensor([[0.1, 1.0, 0.0], [0.0, 0.0, 5.0]])  # scale does not matter
    pred = locate(query, gallery_emb, gallery_latlon, logit_scale=100.0)
    assert haversine_km(pred, gallery_latlon[[1, 2]]).max() < 1e-3


def test_an_unsure_posterior_answers_the_middle_of_its_candidates():
    """A view that fits four places round a square equally well: the mode is one corner, the
    posterior median the centre, which has the least expected error."""
    candidates = torch.tensor(
        [[-10.0, 10.0], [-10.0, 30.0], [10.0, 10.0], [10.0, 30.0]], dtype=torch.float64
    )
    far = torch.tensor([[60.0, -100.0]], dtype=torch.float64)
    gallery_latlon = torch.cat([candidates, far])
    gallery_emb = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]])  # the far place does not fit
    pred = locate(torch.tensor([[1.0, 0.0]]), gallery_emb, gallery_latlon, logit_scale=1 / 0.07)
    assert haversine_km(pred, torch.tensor([[0.0, 20.0]], dtype=torch.float64)).item() < 5.0
    expected_km = haversine_km(pred, candidates).mean()
    for c in candidates:  # answering any one candidate is worse on average
        assert haversine_km(c[None], candidates).mean() > expected_km + 100.0


def test_chunks_do_not_change_the_answers():
    g = torch.Generator().manual_seed(0)
    gallery_emb = torch.randn(300, 16, generator=g)
    gallery_latlon = torch.stack(
        [torch.rand(300, generator=g) * 140 - 70, torch.rand(300, generator=g) * 360 - 180], -1
    ).double()
    query = gallery_emb[:20] + 0.3 * torch.randn(20, 16, generator=g)
    whole = locate(query, gallery_emb, gallery_latlon, logit_scale=30.0)
    chunked = locate(query, gallery_emb, gallery_latlon, logit_scale=30.0, chunk=7)
    assert haversine_km(whole, chunked).max() < 1e-3
    # a sharp posterior answers (about) the best entry, a flat one somewhere in between
    sharp = locate(query, gallery_emb, gallery_latlon, logit_scale=1e3)
    cos = (
        torch.nn.functional.normalize(query, dim=-1)
        @ torch.nn.functional.normalize(gallery_emb, dim=-1).T
    )
    best = gallery_latlon[cos.argmax(1)]
    assert haversine_km(sharp, best).median() < 1.0


@pytest.mark.parametrize(
    "query, emb, latlon, scale, match",
    [
        (torch.ones(2, 4), torch.ones(3, 5), torch.zeros(3, 2), 10.0, "do not match"),
        (torch.ones(2, 4), torch.ones(3, 4), torch.zeros(4, 2), 10.0, "do not match"),
        (torch.ones(2, 4), torch.ones(3, 4), torch.zeros(3, 2), 0.0, "logit_scale"),
    ],
)
def test_locate_names_bad_inputs(query, emb, latlon, scale, match):
    with pytest.raises(ValueError, match=match):
        locate(query, emb, latlon, logit_scale=scale)
