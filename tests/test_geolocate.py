"""The posterior-median answer to "where was this view taken?" (gair.geolocate)."""

import numpy as np
import pytest
import torch

from gair.geo import haversine_km
from gair.geolocate import (
    area_prior,
    geographic_median,
    latlon_to_xyz,
    locate,
    spherical_median,
    xyz_to_latlon,
)
from gair.spread import cell_weights, spread_choice


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


def _crowded_and_sparse():
    """40 places crowded within ~20 km of Chicago and one each in Lagos and Lima."""
    rng = np.random.default_rng(0)
    crowd = np.array([41.9, -87.6]) + rng.normal(0, 0.1, (40, 2))
    return np.vstack([crowd, [[6.5, 3.4], [-12.0, -77.0]]])


def test_area_prior_gives_each_cell_the_same_mass():
    latlon = _crowded_and_sparse()
    w = cell_weights(latlon)
    assert w.shape == (42,) and abs(w.sum() - 1) < 1e-12
    assert np.allclose(w[-2:], 1 / 3)  # Lagos and Lima: a cell each, a third of the mass each
    assert np.isclose(w[:40].sum(), 1 / 3)  # the crowd shares its one cell's third
    assert np.allclose(area_prior(latlon), w)


def test_an_unsure_view_lands_between_regions_under_the_area_prior_not_in_the_crowd():
    """A view that fits every place equally: under the gallery's density its answer sits in the
    crowd; under the area prior it moves towards the lone places (the flat-score answers)."""
    latlon = _crowded_and_sparse()
    emb = torch.ones(42, 4)
    dense = locate(torch.ones(1, 4), emb, latlon, logit_scale=10.0)
    area = locate(torch.ones(1, 4), emb, latlon, logit_scale=10.0, prior=area_prior(latlon))
    chicago = torch.tensor([[41.9, -87.6]], dtype=torch.float64)
    assert haversine_km(dense, chicago).item() < 50
    assert haversine_km(area, chicago).item() > 2000
    # the flat-score answer of each prior is the (weighted) geographic median of the gallery
    assert haversine_km(area[0].numpy(), geographic_median(latlon, area_prior(latlon))) < 1.0
    assert haversine_km(dense[0].numpy(), geographic_median(latlon)) < 1.0


def test_a_confident_view_ignores_the_prior():
    latlon = _crowded_and_sparse()
    emb = torch.zeros(42, 2)
    emb[:, 0] = 1.0
    emb[-2] = torch.tensor([0.0, 1.0])  # only Lagos fits the view
    pred = locate(
        torch.tensor([[0.0, 1.0]]), emb, latlon, logit_scale=100.0, prior=area_prior(latlon)
    )
    assert haversine_km(pred[0].numpy(), latlon[-2]) < 1.0


@pytest.mark.parametrize("prior", [np.ones(3), np.r_[np.ones(41), 0.0], np.r_[np.ones(41), np.nan]])
def test_locate_names_a_bad_prior(prior):
    with pytest.raises(ValueError, match="prior must be 42 finite positive weights"):
        locate(torch.ones(1, 4), torch.ones(42, 4), _crowded_and_sparse(), 10.0, prior=prior)


def test_spread_choice_takes_the_lone_places_and_stays_seeded():
    latlon = _crowded_and_sparse()
    rows = spread_choice(latlon, 5, np.random.default_rng(3))
    assert len(set(rows)) == 5 and (np.diff(rows) > 0).all()
    # each lone place has a third of the weight: over seeds, they are nearly always drawn
    hits = [
        {40, 41} <= set(spread_choice(latlon, 5, np.random.default_rng(s)).tolist())
        for s in range(50)
    ]
    assert np.mean(hits) > 0.9  # a uniform draw of 5 of 42 takes both 1% of the time
    assert (spread_choice(latlon, 5, np.random.default_rng(3)) == rows).all()
    assert (spread_choice(latlon, 99, np.random.default_rng(3)) == np.arange(42)).all()
