"""GAIR Explorer, the map app.

    streamlit run app/main.py [-- --index DIR --world DIR --checkpoint RUN_DIR]

(or env GAIR_INDEX / GAIR_WORLD / GAIR_CHECKPOINT; `make serve`). Click the map: the INR
embedding of that exact coordinate, its nearest street views, similar places, downstream
predictions; search by street view; compare two points; export. Works with no network.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if (
    str(ROOT) not in sys.path
):  # `streamlit run app/main.py` puts app/ first on sys.path, not the repo
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from streamlit.errors import StreamlitAPIException  # noqa: E402


def _icon() -> Image.Image:
    """A small globe favicon drawn locally (an emoji icon would be fetched from a CDN)."""
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.ellipse((4, 4, 60, 60), fill=(21, 101, 192), outline=(144, 202, 249), width=3)
    d.ellipse((16, 14, 34, 30), fill=(67, 160, 71))
    d.ellipse((30, 32, 50, 52), fill=(67, 160, 71))
    return im


st.set_page_config(
    page_title="GAIR Explorer", page_icon=_icon(), layout="wide", initial_sidebar_state="expanded"
)

from streamlit_folium import st_folium  # noqa: E402

from app import assets, logic, maps, state  # noqa: E402
from app.logic import detail  # noqa: E402
from app.panels import (  # noqa: E402
    about,
    compare,
    embedding,
    labelsets_tab,
    places,
    predictions,
    search,
    streetviews,
    summary,
)
from app.panels import labelsets as labelsets_panel  # noqa: E402  (issue 16: Label & find)
from app.panels.common import legend, marker_key  # noqa: E402
from app.resources import Settings, SetupError, configure_threads, open_resources  # noqa: E402

log = logging.getLogger("gair.app")

CSS = """
<style>
.block-container {padding: 1.2rem 2.2rem 1rem 2.2rem; max-width: none;}
h1.gair-title {font-size: 1.7rem; margin: 0 0 .1rem 0; padding: 0;}
.gair-sub {color: #9fb0c8; margin-bottom: .6rem; font-size: .95rem;}
.gair-legend {font-size: .8rem; margin: .2rem 0 .4rem 0;}
.gair-legend-title {color: #9fb0c8; margin-bottom: 2px;}
.gair-legend-bar {height: 10px; border-radius: 3px; width: 100%;}
.gair-legend-ticks {display: flex; justify-content: space-between; color: #9fb0c8;}
.gair-chip {display: inline-block; margin: 0 10px 2px 0; white-space: nowrap;}
.gair-chip i {display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: middle;}
.gair-badge {background: #7c3aed; color: white; border-radius: 4px; padding: 1px 6px; font-size: .75rem; font-weight: 600;}
.gair-point {font-size: 1.25rem; font-weight: 600;}
.gair-kv {color: #9fb0c8; font-size: .85rem;}
.gair-kv b {color: #e6edf7; font-weight: 500;}
div[data-testid="stMetricValue"] {font-size: 1.35rem;}
</style>
"""


@st.cache_resource(show_spinner="Opening the imagery and the index ...")
def get_resources(index: str, world: str | None, checkpoint: str | None, device: str = "auto"):
    """Shared by all sessions (world rasters are memory-mapped; GridIndex is thread-safe)."""
    configure_threads()
    res = open_resources(Settings(index, world, checkpoint, device))
    assets.ensure_tiles(res.source)
    # the overlay lookup and the vectors of the cells it draws (~0.5 s for 82k cells, ~2 s for
    # 4 M) are built in the background once the first page is drawn; a click before then waits
    threading.Thread(target=res.warm_heatmap, args=(True,), name="gair-raster", daemon=True).start()
    return res


# --------------------------------------------------------------------------- callbacks


def _fly(lat: float, lon: float) -> None:
    state.select_point(lat, lon, fly=True, zoom=5)


def _goto() -> None:
    text = st.session_state.get("goto", "")
    try:
        lat, lon = logic.parse_coordinates(text)
    except ValueError as err:
        st.session_state["coord_message"] = str(err)
        return
    st.session_state["coord_message"] = None
    state.select_point(lat, lon, fly=True, zoom=5)


def _set_b() -> None:
    p = st.session_state.get("point")
    if p is not None:
        st.session_state["compare_b"] = tuple(p)


def _set_b_value(lat: float, lon: float) -> None:
    st.session_state["compare_b"] = (lat, lon)


def _heat_choice() -> None:
    st.session_state["heat_source"] = st.session_state.get("heat_choice", "point")


def _clear() -> None:
    st.session_state["point"] = None
    st.session_state["search"] = None
    st.session_state["compare_b"] = None
    st.session_state["heat_source"] = "point"


# --------------------------------------------------------------------------- page parts


def setup_page(err: SetupError) -> None:
    st.markdown('<h1 class="gair-title">GAIR Explorer</h1>', unsafe_allow_html=True)
    st.error(err.message)
    if err.command:
        st.markdown("Build it with:")
        st.code(err.command, language="bash")
    st.caption(
        "Paths come from `--index/--world/--checkpoint` after `streamlit run app/main.py --`, or env GAIR_INDEX, GAIR_WORLD, GAIR_CHECKPOINT."
    )


@st.fragment(run_every=1.0)
def await_model(res) -> None:
    """While a click shows the nearest cell's stored answer: rerun the page once the model is
    loaded, so the exact answer at the point replaces it."""
    if res.model_ready:
        st.rerun()


@st.fragment
def map_panel(res, result, point, overlay, opacity: float, online: bool, tiles_zoom: int) -> None:
    """The map, isolated: a click reruns only this fragment, which records the new point and
    then reruns the page once so the panels follow. The base map's script is identical on
    every run, so the browser keeps its Leaflet map; only the feature groups change. A pan or
    zoom reruns it too: zoomed in on cells finer than the global overlay, the overlay is
    redrawn for the view (`app.logic.detail`)."""
    base_overlay = overlay
    m = maps.base_map(
        res.source, online=online, tiles_zoom=tiles_zoom, max_zoom=maps.index_view(res)["max_zoom"]
    )
    overlay = detail.in_view(res, overlay, st.session_state.get("map_view"))  # zoomed: finer
    layers = maps.query_layers(
        result,
        point=point,
        overlay=overlay,
        opacity=opacity,
        compare_point=st.session_state.get("compare_b"),
    )
    layers += labelsets_panel.map_layers(res)  # the active label set (none while it is empty)
    out = st_folium(
        m,
        key="map",
        height=600,
        use_container_width=True,
        center=st.session_state["map_center"],
        zoom=st.session_state["map_zoom"],
        feature_group_to_add=layers,
        layer_control=maps.layer_control(),
        returned_objects=["last_clicked", "bounds", "zoom"],
    )
    click = (out or {}).get("last_clicked")
    view = {"bounds": (out or {}).get("bounds"), "zoom": (out or {}).get("zoom")}
    if view != st.session_state.get("map_view") and not (
        click and click != st.session_state.get("last_click")
    ):
        st.session_state["map_view"] = view  # a pan or zoom: redraw if it shows more detail
        if detail.in_view(res, base_overlay, view) is not overlay:
            try:
                st.rerun(scope="fragment")
            except StreamlitAPIException:  # not a fragment run (Streamlit refuses that scope)
                st.rerun()
    if click and click != st.session_state.get("last_click"):
        st.session_state["last_click"] = click
        try:
            lat, lon = logic.check_point(click.get("lat"), click.get("lng"), wrap=True)
        except (ValueError, AttributeError) as err:
            st.session_state["coord_message"] = f"Ignored a click: {err}"
            return
        if not labelsets_panel.on_map_click(res, lat, lon):  # labelling mode adds an example
            state.select_point(lat, lon)
        st.rerun()


def sidebar(res, tiles_zoom: int):
    """The sidebar's widgets (rendered first, so they always exist); returns the message slot."""
    with st.sidebar:
        st.markdown("### Go to")
        st.text_input(
            "Coordinates (lat, lon)",
            key="goto",
            placeholder="e.g. 48.85, 2.35 or 33.9S 18.4E",
            on_change=_goto,
        )
        c1, c2 = st.columns(2)
        c1.button("Go", on_click=_goto, width="stretch", key="goto_btn")
        c2.button("Clear", on_click=_clear, width="stretch", key="clear_btn")
        message = st.empty()  # filled at the end of the run (messages may come later in it)
        st.markdown("### Map")
        st.selectbox(
            "Overlay",
            logic.map_layers(res),
            key="layer",
            help="similarity of the current query, or a prediction / ground-truth layer over all places",
        )
        if (
            st.session_state.get("search") is not None
            and st.session_state.get("layer") == logic.LAYER_SIMILARITY
        ):
            # the radio has its own key: `heat_source` is also set by searches and clicks
            st.session_state["heat_choice"] = st.session_state.get("heat_source", "point")
            st.radio(
                "Heatmap shows",
                ["point", "image"],
                key="heat_choice",
                on_change=_heat_choice,
                format_func=lambda s: (
                    "the selected point" if s == "point" else "the street-view search"
                ),
                horizontal=True,
            )
        st.slider("Overlay opacity", 0.1, 1.0, key="opacity", step=0.05)
        st.toggle(
            "Online basemaps (needs internet)",
            key="online",
            help="adds OpenStreetMap, Esri imagery and CartoDB to the layer switch (top right of the map)",
        )
        st.slider("Results per query (k)", 3, 20, key="k")
        labelsets_panel.sidebar(res)
        st.divider()
        m = res.manifest
        st.caption(
            f"Index `{res.settings.index}`: {len(res.cells):,} places ({m['grid']['spec']}{', land' if m['grid'].get('land_only') else ''}), "
            f"{len(res.gallery):,} street views. Checkpoint `{res.run_dir.name}` ({str(m['checkpoint_hash'])[:10]}). "
            f"Imagery: {_source_note(res)}. "
            + (f"Basemap tiles to zoom {tiles_zoom}." if tiles_zoom >= 0 else "No basemap.")
            + _device_note(res)
        )
        if res.integrity["state"] == "damaged":
            st.error(f"Index check failed: {res.integrity['error']}")
        elif res.integrity["state"] == "ok":
            st.caption("Index files verified against their SHA-256.")
    return message


def _source_note(res) -> str:
    kind = res.source_kind
    return {"world": "the demo world", "rasters": "your rasters", "prepared": "prepared chips"}.get(
        kind, kind
    )


def _device_note(res) -> str:
    embedder = res.index.embedder
    if not getattr(embedder, "loaded", True):
        return f" Model: not loaded yet (device {res.settings.device})."
    return f" Model on {getattr(embedder, 'device', '?')}."


def main() -> None:
    st.markdown(CSS, unsafe_allow_html=True)
    for key, value in (
        ("k", logic.K_DEFAULT),
        ("opacity", 0.7),
        ("online", False),
        ("layer", logic.LAYER_SIMILARITY),
    ):
        st.session_state.setdefault(key, value)
    settings = Settings.from_env(sys.argv[1:])
    try:
        res = get_resources(settings.index, settings.world, settings.checkpoint, settings.device)
    except SetupError as err:
        setup_page(err)
        return
    except Exception as err:  # never a traceback in the page; the log has it
        log.exception("opening the app's resources failed")
        setup_page(
            SetupError(
                f"Could not open the index/world/checkpoint: {type(err).__name__}: {err}",
                "make demo",
            )
        )
        return
    with res.page_run():  # the model loads once the pages have gone quiet
        page(res)
    res.load_model_in_background()


def page(res) -> None:
    """The whole page for opened resources."""
    missing = assets.missing_vendor_files()
    if missing:
        st.error(
            f"Leaflet is not installed in app/static/vendor ({', '.join(missing)}): the map cannot render. Run `scripts/vendor_assets.sh` (or `make vendor`)."
        )
    if not st.get_option("server.enableStaticServing"):
        st.warning(
            "Static file serving is off, so the map has no Leaflet and no basemap: start with `--server.enableStaticServing true` (app/.streamlit/config.toml sets it)."
        )
    state.init(maps.index_view(res))  # the map opens on the index's area
    res.verify_in_background()  # once per process: hash every index file
    tiles_zoom = assets.tiles_zoom_ready(res.source)
    message_slot = sidebar(res, tiles_zoom)

    k = logic.clamp_k(st.session_state.get("k"))
    if st.session_state.get("layer") not in logic.map_layers(res):
        st.session_state["layer"] = logic.LAYER_SIMILARITY
    point = state.current_point()
    result = None
    if point is not None:
        try:
            if res.model_ready:
                result = state.click_result(res, point, k)
            else:  # the first seconds after a start: the nearest cell's stored answer, not cached
                result = logic.provisional_click(res, point[0], point[1], k)
                await_model(res)
        except ValueError as err:
            st.session_state["coord_message"] = str(err)
            st.session_state["point"] = None
            point = None

    st.markdown('<h1 class="gair-title">GAIR Explorer</h1>', unsafe_allow_html=True)
    if result is not None and result.get("provisional"):
        cell = result["provisional"]
        st.info(
            f"The model is loading (first start): shown is the stored answer of the nearest grid "
            f"cell, {cell['cell_id']}, {cell['distance_km']:,.1f} km from the point. The exact "
            "answer at the point replaces it in a few seconds.",
            icon="⏳",
        )
    st.markdown(
        '<div class="gair-sub">Geo-aligned implicit representations: click a point for its INR embedding, '
        "nearest street views, similar places and predictions; search places by street view.</div>",
        unsafe_allow_html=True,
    )

    # which query the map shows
    searched = st.session_state.get("search")
    shown = (
        searched
        if (searched is not None and st.session_state.get("heat_source") == "image")
        else result
    )
    layer = st.session_state.get("layer", logic.LAYER_SIMILARITY)
    overlay = (
        shown.get("overlay")
        if (shown is not None and layer == logic.LAYER_SIMILARITY)
        else logic.layer_overlay(res, layer)
    )
    overlay = labelsets_panel.map_overlay(res) or overlay  # the label set's scores, when shown

    left, right = st.columns([13, 6], gap="medium")
    with left:
        map_panel(
            res,
            shown,
            point,
            overlay,
            float(st.session_state.get("opacity", 0.7)),
            bool(st.session_state.get("online")),
            tiles_zoom,
        )
        lc1, lc2 = st.columns([3, 2], vertical_alignment="top")
        with lc1:
            if overlay is not None:
                legend(overlay["legend"])
        with lc2:
            if shown is not None:
                marker_key(search=shown is searched)
    with right:
        if result is None:
            summary.welcome(res, _fly)
        else:
            summary.point_summary(res, result, _set_b)

    tabs = st.tabs(
        [
            "Embedding",
            "Street views",
            "Similar places",
            "Predictions",
            "Cross-view search",
            "Label & find",
            "Compare",
            "About",
        ]
    )
    need = "Select a point on the map (or type coordinates in the sidebar) to fill this panel."
    point_panels = (
        lambda: embedding.render(res, result),
        lambda: streetviews.render(res, result, _fly),
        lambda: places.render(res, result, _fly),
        lambda: predictions.render(res, result),
    )
    for tab, panel in zip(tabs[:4], point_panels):
        with tab:
            if result is None:
                st.info(need)
            else:
                panel()
    with tabs[4]:
        search.render(res, k, _fly)
    with tabs[5]:
        labelsets_tab.render(res, _fly)
    with tabs[6]:
        compare.render(res, point, _set_b_value)
    with tabs[7]:
        about.render(res)
    if st.session_state.get("coord_message"):
        message_slot.error(st.session_state["coord_message"])


main()
