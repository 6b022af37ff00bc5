"""The leafmap (folium backend) map and its per-query layers.

The base map (basemaps + controls) is the same on every rerun, so streamlit-folium keeps the
same Leaflet map in the browser; what changes per click (markers, the heatmap overlay) goes
through `st_folium(feature_group_to_add=...)`, which swaps those layers in place: no reload,
no flicker. All JS/CSS is local (`app.assets.localise_map`).
"""

from __future__ import annotations

import functools

import branca.element
import folium
import numpy as np
from jinja2 import Template

from app import assets


@functools.lru_cache(maxsize=1024)
def _compiled_template(source: str) -> Template:
    return Template(source)


# branca compiles a new jinja2 Template for every element made from a template string (~32 per
# map render, ~10 ms of CPU under the GIL per click); a compiled template is immutable and
# thread-safe to render, so identical sources share one (benchmarks/bench_load.py).
branca.element.Template = _compiled_template

RS_LAYER_NAME = "Demo world RS (Blue Marble + relief)"
RS_ATTRIBUTION = "Demo world: NASA Blue Marble + shaded relief"
RASTER_LAYER_NAME = "Index imagery (true colour)"
RASTER_ATTRIBUTION = "Imagery: the index's own rasters"
ONLINE_BASEMAPS = {
    # name: (url, attribution, max native zoom)
    "OpenStreetMap (online)": (
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "&copy; OpenStreetMap contributors",
        19,
    ),
    "Esri World Imagery (online)": (
        "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{z}/{y}/{x}",
        "Tiles &copy; Esri, Maxar, Earthstar Geographics",
        18,
    ),
    "CartoDB Positron (online)": (
        "https://{s}.basemaps.cartocdn.com/light_all/{z}/{x}/{y}.png",
        "&copy; OpenStreetMap contributors &copy; CARTO",
        19,
    ),
}
DEFAULT_CENTER = (20.0, 0.0)
DEFAULT_ZOOM = 2
MAX_ZOOM = 11  # the demo's; finer grids and raster sources zoom further (`index_view`)
ZOOM_CAP = 19

QUERY_COLOR = "#ff3b30"
PLACE_COLOR = "#00e5ff"
SV_COLOR = "#ffd60a"
TRUTH_COLOR = "#34c759"
SV_ICON_HTML = (
    f'<div style="width:10px;height:10px;background:{SV_COLOR};border:1.5px solid #0b132b;'
    'transform:rotate(45deg);box-sizing:border-box"></div>'
)
MAP_CSS = """<style>
.leaflet-container {background: #0b1220; font-size: 12px;}
.leaflet-control-attribution {font-size: 10px; background: rgba(11, 18, 32, .7) !important; color: #cbd5e1;}
.leaflet-control-attribution a {color: #7dd3fc;}
.leaflet-tooltip {font-size: 12px;}
.leaflet-control-scale-line {font-size: 10px; background: rgba(255, 255, 255, .65);}
</style>"""


def _provider(name: str, url: str, attribution: str):
    """A TileProvider object: folium then skips its slow lookup of the URL among all named
    xyzservices providers (~20 ms a call)."""
    import xyzservices

    return xyzservices.TileProvider(
        name=name, url=url, attribution=attribution, html_attribution=attribution
    )


def _index_tile_providers() -> None:
    """Make xyzservices' provider lookup by name a dict lookup.

    Importing `leafmap.foliumap` builds ~120 folium TileLayers, and each one calls
    `xyzservices.providers.query_name`, which flattens and re-keys the ~1,000-provider tree
    on every call: 2.9 s of the app's cold start. The tree is static, so it is flattened once
    here; names that are not providers still raise ValueError, as before.
    """
    import xyzservices
    from xyzservices.lib import QUERY_NAME_TRANSLATION

    providers = xyzservices.providers
    if getattr(providers, "_gair_indexed", False):
        return
    table = {k.translate(QUERY_NAME_TRANSLATION).lower(): v for k, v in providers.flatten().items()}

    def query_name(name: str):
        clean = name.translate(QUERY_NAME_TRANSLATION).lower()
        if clean in table:
            return table[clean]
        raise ValueError(f"No matching provider found for the query '{name}'.")

    object.__setattr__(providers, "query_name", query_name)
    object.__setattr__(providers, "_gair_indexed", True)


def index_view(res) -> dict:
    """The map's first view and zoom limit for an index: {"center", "zoom", "max_zoom"}. The
    demo (global) keeps DEFAULT_CENTER / DEFAULT_ZOOM / MAX_ZOOM; a regional index opens
    fitted to its extent; a raster source zooms to its native zoom, other fine grids to where
    a cell spans ~24 px."""

    def build():
        from app.extent import initial_view, zoom_for_spacing

        source = res.source if res.source is not None else res.world
        if assets.tiles_kind(source) == "rasters":
            top = int(source.native_zoom)
        else:
            lat = res.cell_latlon[:, 0]
            spacing = res.spacing
            middle = float(abs(lat).mean()) if len(lat) else 0.0
            top = max(MAX_ZOOM, min(ZOOM_CAP, zoom_for_spacing(spacing, middle)))
        view = initial_view(res.extent, top)
        if view is None:
            return {"center": DEFAULT_CENTER, "zoom": DEFAULT_ZOOM, "max_zoom": top}
        return {"center": view[0], "zoom": view[1], "max_zoom": top}

    return res.cached("__map_view__", build)


def base_map(world, online: bool = False, tiles_zoom: int = assets.TILE_MAX_ZOOM, max_zoom=None):
    """The leafmap Map: the index's imagery as the default basemap (the demo world's RS tiles,
    or tiles rendered from the user's rasters; none for prepared chips), online basemaps only
    when asked, scale bar, no CDN assets. `world`: the index's RS source."""
    _index_tile_providers()
    import leafmap.foliumap as leafmap

    max_zoom = int(max_zoom or MAX_ZOOM)
    m = leafmap.Map(
        center=list(DEFAULT_CENTER),
        zoom=DEFAULT_ZOOM,
        tiles=None,
        min_zoom=1,
        max_zoom=max_zoom,
        world_copy_jump=True,
        draw_control=False,
        measure_control=False,
        fullscreen_control=False,
        search_control=False,
        locate_control=False,
        minimap_control=False,
        latlon_control=False,
        scale_control=True,
        layers_control=False,
        attribution_control=True,
        height=600,
    )
    kind = assets.tiles_kind(world)
    if kind != "none":
        name, attribution = (
            (RASTER_LAYER_NAME, RASTER_ATTRIBUTION)
            if kind == "rasters"
            else (RS_LAYER_NAME, RS_ATTRIBUTION)
        )
        extra = {}
        if kind == "rasters":  # no requests for tiles that were not rendered (no imagery)
            w, s, e, n = (float(v) for v in world.bounds4326)
            extra["bounds"] = [[s, w], [n, e]]
        rs = folium.TileLayer(
            tiles=_provider(name, assets.tiles_url(world), attribution),
            attr=attribution,
            name=name,
            min_zoom=0,
            max_zoom=max_zoom,
            max_native_zoom=max(0, int(tiles_zoom)),
            overlay=False,
            control=True,
            show=True,
            **extra,
        )
        rs.add_to(m)
    unseen = unseen_region_layer(world)
    if unseen is not None:
        unseen.add_to(m)
    if online:
        for name, (url, attr, native) in ONLINE_BASEMAPS.items():
            folium.TileLayer(
                tiles=_provider(name, url, attr),
                attr=attr,
                name=name,
                max_zoom=max_zoom,
                max_native_zoom=native,
                overlay=False,
                control=True,
                show=False,
            ).add_to(m)
    m.get_root().header.add_child(folium.Element(MAP_CSS))
    IconPath(assets.static_url("vendor/leaflet/images/")).add_to(m)
    assets.localise_map(m)
    return m


UNSEEN_LAYER_NAME = "Unseen region (held out of training)"


def unseen_region_layer(world) -> folium.FeatureGroup | None:
    """The outline of the world's unseen region (`manifest["splits"]["unseen_block"]`, an H3
    cell held out whole from training, where the heads' answers are guesses), dashed, as a
    layer the map's control can hide; None for a source without one (the user's rasters)."""
    splits = (getattr(world, "manifest", None) or {}).get("splits") or {}
    block = splits.get("unseen_block")
    if not block:
        return None
    group = folium.FeatureGroup(name=UNSEEN_LAYER_NAME, overlay=True, control=True, show=True)
    folium.PolyLine(
        list(h3_outline(block)), color="#ffb000", weight=2, opacity=0.9, dash_array="8 6"
    ).add_to(group)
    return group


@functools.lru_cache(maxsize=16)
def h3_outline(cell: str, per_edge: int = 24) -> tuple[tuple[float, float], ...]:
    """A closed ring of (lat, lon) along an H3 cell's boundary (cached: the base map draws it on
    every rerun). Its edges are great-circle arcs (straight in H3's gnomonic faces), so each is
    sampled at `per_edge` points rather than drawn as a straight line on the Mercator map (at
    resolution 0, ~100 km off mid-edge); longitudes are unwrapped so a ring across the
    antimeridian stays whole."""
    import h3

    from gair.world.grid import unit_vectors

    corners = np.array(h3.cell_to_boundary(cell), np.float64)
    a = unit_vectors(corners[:, 0], corners[:, 1])  # [V, 3]
    b = np.roll(a, -1, axis=0)
    angle = np.arccos(np.clip(np.sum(a * b, 1), -1.0, 1.0))[:, None, None]  # [V, 1, 1]
    t = np.linspace(0.0, 1.0, per_edge, endpoint=False)[None, :, None]  # [1, E, 1]
    # slerp from each corner to the next: [V, E, 3] -> [V * E, 3]
    xyz = (np.sin((1 - t) * angle) * a[:, None] + np.sin(t * angle) * b[:, None]) / np.maximum(
        np.sin(angle), 1e-12
    )
    xyz = np.concatenate([xyz.reshape(-1, 3), xyz[:1, 0]])  # closed
    lat = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
    lon = np.degrees(np.unwrap(np.arctan2(xyz[:, 1], xyz[:, 0])))
    return tuple((round(float(la), 5), round(float(lo), 5)) for la, lo in zip(lat, lon))


def _fmt(lat: float, lon: float) -> str:
    return f"{abs(lat):.3f}°{'N' if lat >= 0 else 'S'}, {abs(lon):.3f}°{'E' if lon >= 0 else 'W'}"


class IconPath(folium.MacroElement):
    """Point Leaflet's default marker icon at the local images. Leaflet otherwise derives the
    path from leaflet.css, which may not have loaded yet when the first marker is drawn."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
L.Icon.Default.imagePath = {{ this.path|tojson }};
{% endmacro %}
"""
    )

    def __init__(self, path: str):
        super().__init__()
        self._name = "IconPath"
        self.path = path


class PointLayer(folium.MacroElement):
    """Many markers as ONE element: a JSON list of points drawn by a small loop of core Leaflet
    calls (circle markers, div-icon diamonds, pins) with tooltips. Folium would compile a Jinja
    template per marker on every rerun (~5 ms each); this compiles once per process."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
(function () {
    var pts = {{ this.points|tojson }};
    for (var i = 0; i < pts.length; i++) {
        var p = pts[i], m;
        if (p.kind === "diamond") {
            m = L.marker([p.lat, p.lon], {icon: L.divIcon({html: p.html, className: "gair-div-icon", iconSize: [12, 12], iconAnchor: [6, 6]})});
        } else if (p.kind === "pin") {
            m = L.marker([p.lat, p.lon]);
        } else {
            m = L.circleMarker([p.lat, p.lon], p.style);
        }
        if (p.tip) { m.bindTooltip(p.tip); }
        m.addTo({{ this._parent.get_name() }});
    }
})();
{% endmacro %}
"""
    )

    def __init__(self, points: list[dict]):
        super().__init__()
        self._name = "PointLayer"
        self.points = points


def circle_marker(lat, lon, tip, fill, radius=5, color="#0b132b", weight=1.5) -> dict:
    style = {
        "radius": radius,
        "color": color,
        "weight": weight,
        "fill": True,
        "fillColor": fill,
        "fillOpacity": 0.95,
    }
    return {"kind": "circle", "lat": float(lat), "lon": float(lon), "tip": tip, "style": style}


def query_layers(
    result: dict | None,
    point: tuple[float, float] | None = None,
    overlay: dict | None = None,
    opacity: float = 0.75,
    compare_point: tuple[float, float] | None = None,
) -> list[folium.FeatureGroup]:
    """The dynamic layers: heatmap overlay (ONE image), top places, street views, the query."""
    groups = []
    heat = folium.FeatureGroup(name="Heatmap overlay", overlay=True, control=True, show=True)
    if overlay is not None:
        image = folium.raster_layers.ImageOverlay(
            image="data:,",  # placeholder: the real URL (a static file) is set below
            bounds=overlay["bounds"],
            opacity=float(opacity),
            interactive=False,
            cross_origin=False,
            zindex=5,
            name="heatmap",
        )
        image.url = assets.overlay_url(overlay["png"])
        image.add_to(heat)
    groups.append(heat)

    place_pts, sv_pts, query_pts = [], [], []
    if result is not None:
        for r in result["places"].itertuples(index=False):
            dist = getattr(r, "distance_km", float("nan"))
            dist = f", {dist:,.0f} km away" if np.isfinite(dist) else ""
            place_pts.append(
                circle_marker(
                    r.lat,
                    r.lon,
                    f"place #{int(r.rank)}: similarity {r.similarity:.3f}{dist}",
                    PLACE_COLOR,
                    radius=7 if r.rank == 1 else 5,
                )
            )
        for r in result["streetviews"].itertuples(index=False):
            sv_pts.append(
                {
                    "kind": "diamond",
                    "lat": float(r.lat),
                    "lon": float(r.lon),
                    "html": SV_ICON_HTML,
                    "tip": f"street view #{int(r.rank)} ({r.sv_id}, rendered): similarity {r.similarity:.3f}",
                }
            )
        truth = result.get("query", {}).get("truth")
        if truth:
            query_pts.append(
                circle_marker(
                    truth[0],
                    truth[1],
                    f"where the street view was taken: {_fmt(*truth)}",
                    TRUTH_COLOR,
                    radius=9,
                    color="#ffffff",
                    weight=2.5,
                )
            )
    if point is not None:
        query_pts.append(
            {
                "kind": "pin",
                "lat": float(point[0]),
                "lon": float(point[1]),
                "tip": f"selected point: {_fmt(*point)}",
            }
        )
    if compare_point is not None:
        query_pts.append(
            circle_marker(
                compare_point[0],
                compare_point[1],
                f"compare B: {_fmt(*compare_point)}",
                QUERY_COLOR,
                radius=8,
                color="#ffffff",
                weight=2,
            )
        )
    for name, pts in (
        ("Similar places (top-k)", place_pts),
        ("Nearest street views", sv_pts),
        ("Query", query_pts),
    ):
        g = folium.FeatureGroup(name=name, overlay=True, control=True, show=True)
        if pts:
            PointLayer(pts).add_to(g)
        groups.append(g)
    for g in groups:
        report = assets.localise_map(g)
        if report["dropped"]:  # a plugin layer would fail in the browser without its JS
            raise ValueError(f"query layers may use core Leaflet only, not {report['dropped']}")
    return groups


def layer_control() -> folium.LayerControl:
    return folium.LayerControl(position="topright", collapsed=True)
