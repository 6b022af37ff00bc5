"""Label & find (issue 16): click places that show something (positives) and some that do not
(negatives), see every similar place of the index, confirm or reject hits, repeat, export.

Session state (tests drive the tab through these, as the widgets do):
- `labelsets`: {name: index.labelset.LabelSet}, in creation order; `labelset_active`: a name
- `label_click`: what a map click does: "explore" (select the point), "positive", "negative"
- `labelset_show`: draw the active set's scores on the map (instead of the other overlays)
- `labelset_message`: the last problem (bad upload, unknown id), shown in the tab

Nothing here runs while the active set has no example, so an ordinary click costs nothing more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import folium
import streamlit as st

from app import maps
from app.logic import labelsets as ls_logic
from index.labelset import LabelSet

CLICK_MODES = {
    "explore": "select the point",
    "positive": "add a positive",
    "negative": "add a negative",
}
POSITIVE_COLOR = "#30d158"
NEGATIVE_COLOR = "#ff453a"
HIT_COLOR = "#ff2d95"
RESULTS_PER_SESSION = 8
FIRST_SET = "Set 1"


def init() -> None:
    ss = st.session_state
    if "labelsets" not in ss:
        ss["labelsets"] = {FIRST_SET: LabelSet(FIRST_SET)}
    if ss.get("labelset_active") not in ss["labelsets"]:
        ss["labelset_active"] = next(iter(ss["labelsets"]))
    ss.setdefault("label_click", "explore")
    ss.setdefault("labelset_show", True)
    ss.setdefault("labelset_message", None)
    ss.setdefault("_labelset_results", OrderedDict())


def active() -> LabelSet:
    init()
    return st.session_state["labelsets"][st.session_state["labelset_active"]]


def store(labelset: LabelSet) -> None:
    """Replace the active set (the name stays the key)."""
    st.session_state["labelsets"][st.session_state["labelset_active"]] = labelset
    warm_up(labelset)


_warm_lock = threading.Lock()
_warm_started = False


def warm_up(labelset: LabelSet) -> None:
    """Once per process, when a set first gets an example: import the optimiser (~0.4 s) in
    the background, so the first logistic fit (the second example) does not wait for it."""
    global _warm_started
    with _warm_lock:
        if _warm_started or not len(labelset):
            return
        _warm_started = True

    def work():
        import scipy.optimize  # noqa: F401

    threading.Thread(target=work, name="gair-labels-warm", daemon=True).start()


def message(text: str | None) -> None:
    st.session_state["labelset_message"] = text


# --------------------------------------------------------------------------- results (cached)


def _cached(key, build):
    cache: OrderedDict = st.session_state["_labelset_results"]
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = build()
    cache[key] = value
    while len(cache) > RESULTS_PER_SESSION:
        cache.popitem(last=False)
    return value


def _threshold_key(labelset: LabelSet, mode: str) -> str:
    return f"labelset_threshold::{st.session_state['labelset_active']}::{mode}"


def current(res) -> dict | None:
    """The active set scored and its hits at the current threshold (cached per session), or
    None when it cannot rank places yet (no positive)."""
    labelset = active()
    if labelset.n_positive == 0:
        return None
    key = labelset.key()
    scored = _cached(("scored", key), lambda: ls_logic.score(res, labelset))
    tkey = _threshold_key(labelset, scored["model"].mode)
    lo, hi = ls_logic.threshold_range(scored)
    threshold = float(st.session_state.get(tkey, scored["threshold"]))
    threshold = min(max(threshold, lo), hi)
    at = _cached(
        ("hits", key, round(threshold, 6)),
        lambda: ls_logic.hits(res, labelset, scored, threshold),
    )
    return {"set": labelset, "scored": scored, "threshold_key": tkey, "range": (lo, hi), **at}


# --------------------------------------------------------------------------- map hooks


def on_map_click(res, lat: float, lon: float) -> bool:
    """In a labelling mode, add the clicked point to the active set (True); else False."""
    init()
    mode = st.session_state.get("label_click", "explore")
    if mode not in ("positive", "negative"):
        return False
    try:
        store(ls_logic.add_point(res, active(), mode, lat, lon))
        message(None)
    except ValueError as err:
        message(f"Could not add the point: {err}")
    return True


def map_overlay(res) -> dict | None:
    """The active set's score heatmap, when it can rank places and the toggle is on."""
    init()
    if not st.session_state.get("labelset_show") or active().n_positive == 0:
        return None
    try:
        cur = current(res)
    except ValueError as err:
        message(str(err))
        return None
    return None if cur is None else cur["overlay"]


def map_layers(res) -> list[folium.FeatureGroup]:
    """The active set's examples (positives: green circles, negatives: red squares) and the
    hits listed for review (pink dots). No layer while the set is empty."""
    init()
    labelset = active()
    if not len(labelset):
        return []
    pts = []
    for i, e in enumerate(labelset.examples):
        if e.lat is None:
            continue
        pos = e.label == "positive"
        color = POSITIVE_COLOR if pos else NEGATIVE_COLOR
        shape = "border-radius:50%" if pos else "border-radius:2px"
        html = (
            f'<div class="gair-label-{"pos" if pos else "neg"}" style="width:12px;height:12px;'
            f'background:{color};border:2px solid #fff;{shape};box-sizing:border-box"></div>'
        )
        pts.append(
            {
                "kind": "diamond",  # a div icon with this html
                "lat": float(e.lat),
                "lon": float(e.lon),
                "html": html,
                "tip": f"{e.label} #{i + 1}: {e.describe()}",
            }
        )
    cur = None
    if st.session_state.get("labelset_show"):
        try:
            cur = current(res)
        except ValueError:
            cur = None
    if cur is not None:
        for r in cur["review"].itertuples(index=False):
            pts.append(
                maps.circle_marker(
                    r.lat, r.lon, f"hit #{int(r.rank)}: score {r.score:.3f}", HIT_COLOR
                )
            )
    group = folium.FeatureGroup(name="Label set", overlay=True, control=True, show=True)
    if pts:
        maps.PointLayer(pts).add_to(group)
    return [group]


# --------------------------------------------------------------------------- sidebar


def sidebar(res) -> None:
    """The sidebar's labelling controls: what a map click does, the active set, the toggle."""
    init()
    st.markdown("### Label places")
    st.radio(
        "A map click",
        list(CLICK_MODES),
        key="label_click",
        format_func=CLICK_MODES.get,
        horizontal=True,
        help="add positives and negatives to the active label set by clicking the map; "
        "the *Label & find* tab lists the hits",
    )
    labelset = active()
    st.caption(
        f"Set **{labelset.name}**: {labelset.n_positive} positive, {labelset.n_negative} negative"
    )
    st.toggle(
        "Show the set's scores on the map",
        key="labelset_show",
        help="the heatmap shows every place scoring at or above the threshold",
    )
