"""The ground-view renderer: views differ the way the places differ (image statistics)."""

from __future__ import annotations

import numpy as np
import pytest

SAHARA = (23.5, 11.5)
AMAZON = (-3.5, -62.0)
GREENLAND = (72.5, -40.0)
HIMALAYA = (27.8, 86.7)
NETHERLANDS = (52.6, 6.3)
TOKYO = (35.68, 139.76)
N_VIEWS = 16


def views(world, place, n=N_VIEWS, size=64):
    ll = np.repeat(np.array([place]), n, axis=0)
    return world.render_views(ll, (np.arange(n) * 90.0) % 360, np.arange(n), size).astype(float)


def ground_rgb(v):
    """Mean colour of the lower third (the near ground)."""
    return v[:, -20:].reshape(-1, 3).mean(0)


def test_view_shape_dtype_and_determinism(world):
    p = np.array(TOKYO)
    a = world.render_view(p, 45.0, 7)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, world.render_view(p, 45.0, 7))
    assert np.abs(a.astype(int) - world.render_view(p, 45.0, 8)).mean() > 5  # another seed
    assert np.abs(a.astype(int) - world.render_view(p, 135.0, 7)).mean() > 5  # another heading
    big = world.render_view(p, 45.0, 7, size=96)
    assert big.shape == (96, 96, 3)


def test_batch_render_equals_single_views(world):
    ll = np.array([SAHARA, TOKYO, GREENLAND, AMAZON])
    batch = world.render_views(ll, [0.0, 90.0, 180.0, 270.0], [1, 2, 3, 4])
    for i in range(4):
        np.testing.assert_array_equal(batch[i], world.render_view(ll[i], 90.0 * i, i + 1))


def test_desert_forest_and_snow_have_their_colours(world):
    desert = ground_rgb(views(world, SAHARA))
    forest = ground_rgb(views(world, AMAZON))
    snow = ground_rgb(views(world, GREENLAND))
    # sand: warm and bright, red > green > blue
    assert desert[0] > desert[1] > desert[2] + 20 and desert.mean() > 120
    # rain forest: dark and green
    assert forest[1] > forest[0] + 15 and forest[1] > forest[2] + 15 and forest.mean() < 80
    # snow: the brightest, nearly grey-white
    assert snow.mean() > 180 and snow.max() - snow.min() < 20
    assert snow.mean() > desert.mean() > forest.mean()


def sky_fraction_top_half(v):
    """Share of the upper half that is blue sky (clouds and overcast count as not sky, in
    both places alike)."""
    top = v[:, :32]
    return (top[..., 2] > top[..., 0] + 15).mean()


def test_mountains_raise_the_horizon(world):
    himalaya = sky_fraction_top_half(views(world, HIMALAYA))
    flat = sky_fraction_top_half(views(world, NETHERLANDS))
    assert himalaya < flat - 0.2


def vertical_edges(v):
    lum = v.mean(-1)
    return (np.abs(np.diff(lum, axis=2)) > 25).mean()


def test_big_city_has_more_built_structure_than_desert(world):
    city = views(world, TOKYO)
    desert = views(world, SAHARA)
    assert vertical_edges(city) > 10 * max(vertical_edges(desert), 0.005)
    # grey, unsaturated facades and streets
    sat = lambda v: (v.max(-1) - v.min(-1)).mean()  # noqa: E731
    assert sat(city) < sat(desert) - 20


def test_ocean_view_is_flat_water(world):
    v = views(world, (-30.0, -140.0), n=4)
    ground = ground_rgb(v)
    assert ground[2] > ground[0]  # blue water
    assert vertical_edges(v) < 0.01


@pytest.mark.parametrize("bad", [(91.0, 0.0), (np.nan, 0.0)])
def test_render_rejects_bad_coordinates(world, bad):
    with pytest.raises(ValueError):
        world.render_view(np.array(bad), 0.0, 0)


def test_render_rejects_bad_heading(world):
    with pytest.raises(ValueError, match="heading"):
        world.render_view(np.array(TOKYO), float("inf"), 0)


# -- roadside signs: the country cue ------------------------------------------------------------
def test_sign_styles_are_regional(world):
    """Top colour = continent (two continents never share a style), bottom = region."""
    styles = world.sign_style
    assert styles.shape == (len(world.country_iso), 3)
    assert (styles[0] == -1).all()  # index 0: no country, no signs
    named = styles[1:]
    assert (named >= 0).all()
    assert (named[:, 0] != named[:, 1]).all()  # two different bands on every plate
    continent = world.country_continent[1:]
    top_of = {}
    for c, s in zip(continent, named[:, 0], strict=True):
        assert top_of.setdefault(c, s) == s  # one top colour per continent
    assert len(set(top_of.values())) == len(top_of)  # and a different one for each
    nld, bel, jpn = (list(world.country_iso).index(c) for c in ("NLD", "BEL", "JPN"))
    assert styles[nld][1] == styles[bel][1] != styles[jpn][1]  # neighbours share a region


def test_regional_styles_cluster_neighbours_and_are_deterministic():
    from gair.world import grid
    from gair.world.render_signs import MAX_REGIONS, regional_styles

    rng = np.random.default_rng(0)
    # one continent of 8 tight groups of 3 countries, far apart; one unnamed country
    centres = [(-40 + 10 * k, -150 + 40 * k) for k in range(8)]
    latlon = np.array(
        [(a + rng.normal(0, 0.5), o + rng.normal(0, 0.5)) for a, o in centres for _ in range(3)]
    )
    xyz = grid.unit_vectors(latlon[:, 0], latlon[:, 1])
    iso = [f"C{i:02d}" for i in range(len(xyz))] + [""]
    cont = ["Africa"] * len(xyz) + ["Africa"]
    xyz = np.vstack([xyz, np.full((1, 3), np.nan)])
    styles = regional_styles(iso, cont, xyz)
    assert (styles[-1] == -1).all()  # no ISO code or no land: no signs
    bottom = styles[:-1, 1].reshape(8, 3)
    assert (bottom == bottom[:, :1]).all()  # a group shares its region
    assert len(np.unique(bottom)) == MAX_REGIONS  # 8 groups, 7 regions: two groups merge
    np.testing.assert_array_equal(styles, regional_styles(iso, cont, xyz))


def test_sign_presence_grows_with_population():
    from gair.world.render_signs import sign_presence

    u = np.random.default_rng(0).random((4000, 2))
    empty = sign_presence(np.zeros(4000), u).mean(0)
    crowded = sign_presence(np.full(4000, 6.0), u).mean(0)
    assert empty[0] == crowded[0] == 1.0  # a road view always has its sign
    assert 0.15 < empty[1] < 0.25 and 0.75 < crowded[1] < 0.85


def test_signs_are_painted_in_the_style_colours():
    from gair.world.render_signs import MAX_SIGNS, N_SIGN_U, POST_COLOURS, SIGN_COLOURS, _draw_signs

    S, N = 64, 3
    img = np.zeros((3, N, S, S), np.float32)
    style = np.array([[0, 2, 1], [1, 4, 2], [-1, -1, -1]])  # red/blue, yellow/white, none
    W = np.full((N, MAX_SIGNS * N_SIGN_U), 0.5)
    W[:, N_SIGN_U] = 0.9  # the second sign does not stand (presence p = 0.2 at pop 0)
    out = _draw_signs(
        img, style, np.ones(N, bool), np.full(N, 12), np.zeros(N), W, np.full(N, 32.0), 32.0, 2.5, S
    )
    for i in range(2):
        rgb = out[:, i].reshape(3, -1).T
        top = (rgb == SIGN_COLOURS[style[i, 0]]).all(1).reshape(S, S)
        bottom = (rgb == SIGN_COLOURS[style[i, 1]]).all(1).reshape(S, S)
        post = (rgb == POST_COLOURS[style[i, 2]]).all(1).reshape(S, S)
        assert top.sum() > 4 and bottom.sum() > 4 and post.sum() > 4
        rows = np.arange(S)[:, None]
        # top band above the bottom band above the post, which stands on the ground
        assert (rows * top).sum() / top.sum() < (rows * bottom).sum() / bottom.sum()
        assert (rows * bottom).sum() / bottom.sum() < (rows * post).sum() / post.sum()
        assert np.flatnonzero(post.any(1)).max() > 32  # below the horizon row
    assert not out[:, 2].any()  # no country: nothing painted
    no_land = _draw_signs(
        img,
        style,
        np.zeros(N, bool),
        np.full(N, 12),
        np.zeros(N),
        W,
        np.full(N, 32.0),
        32.0,
        2.5,
        S,
    )
    assert not no_land.any()


def test_views_in_two_countries_show_their_own_sign_colours(world):
    from gair.world.render_signs import SIGN_COLOURS

    styles = world.sign_style
    iso = world.labels(np.array([NETHERLANDS, TOKYO]))["country"]
    nld, jpn = (styles[list(world.country_iso).index(c)] for c in iso)
    assert (nld[0], nld[1]) != (jpn[0], jpn[1])

    def plates(place, style):
        """Share of pixels in a top-band colour right above a bottom-band colour (lit and
        noisy: within 40 of the style colour in every channel)."""
        v = views(world, place, n=32)
        top = np.abs(v - SIGN_COLOURS[style[0]]).max(-1) < 40
        bottom = np.abs(v - SIGN_COLOURS[style[1]]).max(-1) < 40
        return (top[:, :-1] & bottom[:, 1:]).mean()

    assert plates(NETHERLANDS, nld) > 0.0005
    assert plates(NETHERLANDS, nld) > 5 * plates(TOKYO, nld)
    assert plates(TOKYO, jpn) > 5 * plates(NETHERLANDS, jpn)
