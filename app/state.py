"""Session state: the selected point, the map view, and per-session result caches.

Keys (tests drive the app by setting these, exactly as the map and widgets do):
- `point`: (lat, lon) of the selected point, or None
- `map_center`, `map_zoom`: the map view handed to st_folium (changed only to fly somewhere)
- `search`: the last cross-view search result (dict from `logic.image_search`), or None
- `heat_source`: "point" or "image": which query the map's similarity heatmap shows
- `compare_b`: the second point of the Compare panel, or None
"""

from __future__ import annotations

from collections import OrderedDict

import streamlit as st

from app import logic, maps

RESULTS_PER_SESSION = 16

DEFAULTS = {
    "point": None,
    "map_center": maps.DEFAULT_CENTER,
    "map_zoom": maps.DEFAULT_ZOOM,
    "last_click": None,
    "search": None,
    "heat_source": "point",
    "compare_b": None,
    "coord_message": None,
    "fly_counter": 0,
}


def init(view: dict | None = None) -> None:
    """Session defaults; `view` ({"center", "zoom"}, `maps.index_view`) is where the map opens
    (the index's area; the demo's global view when None)."""
    defaults = dict(DEFAULTS)
    if view is not None:
        defaults["map_center"] = tuple(view["center"])
        defaults["map_zoom"] = int(view["zoom"])
    for key, value in defaults.items():
        if key not in st.session_state:
            st.session_state[key] = value
    if "_results" not in st.session_state:
        st.session_state["_results"] = OrderedDict()


def select_point(lat: float, lon: float, fly: bool = False, zoom: int | None = None) -> None:
    """Make (lat, lon) the selected point; with fly=True also move the map there."""
    st.session_state["point"] = (float(lat), float(lon))
    st.session_state["heat_source"] = "point"
    if fly:
        # a tiny offset makes a repeated fly to the same place still count as a change
        st.session_state["fly_counter"] = (st.session_state.get("fly_counter", 0) + 1) % 10
        eps = 1e-7 * st.session_state["fly_counter"]
        st.session_state["map_center"] = (float(lat) + eps, float(lon))
        current = st.session_state.get("map_zoom") or maps.DEFAULT_ZOOM
        st.session_state["map_zoom"] = max(int(current), zoom or 4)


def current_point() -> tuple[float, float] | None:
    """The selected point, validated (a bad value set from outside becomes a message)."""
    p = st.session_state.get("point")
    if p is None:
        return None
    try:
        lat, lon = p
        return logic.check_point(lat, lon, wrap=True)
    except (TypeError, ValueError) as err:
        st.session_state["coord_message"] = f"Ignored the selected point {p!r}: {err}"
        st.session_state["point"] = None
        return None


def click_result(res, point, k: int) -> dict:
    """`logic.click_result` cached per session (reruns for other widgets cost nothing)."""
    cache: OrderedDict = st.session_state["_results"]
    key = (round(point[0], 7), round(point[1], 7), int(k))
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    result = logic.click_result(res, point[0], point[1], k)
    cache[key] = result
    while len(cache) > RESULTS_PER_SESSION:
        cache.popitem(last=False)
    return result
