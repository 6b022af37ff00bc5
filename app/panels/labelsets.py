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
import time
from collections import OrderedDict

import folium
import numpy as np
import streamlit as st

from app import logic, maps
from app.logic import labelsets as ls_logic
from app.panels.common import PLOT_CONFIG, fmt_latlon, legend
from index.labelset import LabelSet, check_name

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


def _store(labelset: LabelSet) -> None:
    """Replace the active set (the name stays the key)."""
    st.session_state["labelsets"][st.session_state["labelset_active"]] = labelset
    _warm_up(labelset)


_warm_lock = threading.Lock()
_warm_started = False


def _warm_up(labelset: LabelSet) -> None:
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


def _message(text: str | None) -> None:
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
        _store(ls_logic.add_point(res, active(), mode, lat, lon))
        _message(None)
    except ValueError as err:
        _message(f"Could not add the point: {err}")
    return True


def map_overlay(res) -> dict | None:
    """The active set's score heatmap, when it can rank places and the toggle is on."""
    init()
    if not st.session_state.get("labelset_show") or active().n_positive == 0:
        return None
    try:
        cur = current(res)
    except ValueError as err:
        _message(str(err))
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


# --------------------------------------------------------------------------- callbacks


def _label_cell(res, label: str, cell_id: str) -> None:
    try:
        _store(ls_logic.add_cell(res, active(), label, cell_id))
        _message(None)
    except ValueError as err:
        _message(f"Could not add cell {cell_id}: {err}")


def _remove(i: int) -> None:
    try:
        _store(active().remove(i))
    except ValueError as err:
        _message(str(err))


def _new_set() -> None:
    name = st.session_state.get("labelset_new_name", "")
    sets = st.session_state["labelsets"]
    try:
        name = check_name(name or f"Set {len(sets) + 1}")
    except ValueError as err:
        _message(str(err))
        return
    if name in sets:
        _message(f"a set named {name!r} exists already")
        return
    sets[name] = LabelSet(name)
    st.session_state["labelset_active"] = name
    st.session_state["labelset_new_name"] = ""
    _message(None)


def _delete_set() -> None:
    sets = st.session_state["labelsets"]
    sets.pop(st.session_state["labelset_active"], None)
    if not sets:
        sets[FIRST_SET] = LabelSet(FIRST_SET)
    st.session_state["labelset_active"] = next(iter(sets))


def _add_gallery(res, label: str) -> None:
    sv_id = st.session_state.get("labelset_sv_pick")
    try:
        _store(ls_logic.add_gallery_view(res, active(), label, str(sv_id)))
        _message(None)
    except ValueError as err:
        _message(str(err))


def _add_upload(res, label: str) -> None:
    up = st.session_state.get("labelset_photo")
    if up is None:
        _message("Choose a photo first.")
        return
    try:
        image = logic.decode_upload(up.getvalue(), up.name)
        _store(ls_logic.add_upload(res, active(), label, image, up.name))
        _message(None)
    except ValueError as err:
        _message(f"Cannot use {up.name}: {err}")


def _load(res) -> None:
    """Load an uploaded GeoJSON as a new set; on any problem a message, nothing changed."""
    up = st.session_state.get("labelset_file")
    if up is None:
        return
    try:
        loaded = ls_logic.load_set(res, up.getvalue(), up.name)
    except ValueError as err:
        _message(f"Could not load {up.name}: {err}")
        return
    sets = st.session_state["labelsets"]
    name, n = loaded.name, 2
    while name in sets:
        name, n = f"{loaded.name} ({n})", n + 1
    sets[name] = loaded.renamed(name)
    st.session_state["labelset_active"] = name
    _warm_up(loaded)
    _message(None)


# --------------------------------------------------------------------------- the tab


def render(res, on_fly) -> None:
    init()
    sets = st.session_state["labelsets"]
    c1, c2, c3, c4 = st.columns([3, 3, 1, 1], vertical_alignment="bottom")
    c1.selectbox("Label set", list(sets), key="labelset_active")
    c2.text_input("New set", key="labelset_new_name", placeholder=f"Set {len(sets) + 1}")
    c3.button("Create", on_click=_new_set, width="stretch", key="labelset_create")
    c4.button("Delete", on_click=_delete_set, width="stretch", key="labelset_delete")
    if st.session_state.get("labelset_message"):
        st.error(st.session_state["labelset_message"])
    labelset = active()
    st.caption(
        "Choose **add a positive** / **add a negative** under *Label places* in the sidebar, then "
        "click places on the map; or confirm / reject the hits below; or add street views. "
        "One positive ranks places by similarity; more examples fit a logistic regression "
        "(random places act as weak negatives while there are few negatives)."
    )
    _examples(labelset)
    _add_views(res)
    try:
        cur = current(res)
    except ValueError as err:
        st.error(str(err))
        cur = None
    if cur is None:
        st.info("Add a positive example to see every place like it.")
    else:
        _results(res, cur, on_fly)
    _save_load(res, labelset, cur)


def _examples(labelset: LabelSet) -> None:
    if not len(labelset):
        return
    frame = labelset.frame()
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "lat": st.column_config.NumberColumn(format="%.3f"),
            "lon": st.column_config.NumberColumn(format="%.3f"),
        },
        height=min(38 + 35 * len(frame), 250),
        key="labelset_table",
    )
    r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
    i = r1.selectbox(
        "Example",
        range(len(labelset)),
        format_func=lambda j: (
            f"#{j + 1} {labelset.examples[j].label}: {labelset.examples[j].describe()}"
        ),
        key="labelset_remove_pick",
    )
    r2.button(
        "Remove", on_click=_remove, args=(int(i or 0),), width="stretch", key="labelset_remove"
    )


def _add_views(res) -> None:
    with st.expander("Add a street view (gallery or photo)"):
        gallery = res.gallery
        if not gallery.empty:
            ids = gallery["sv_id"].astype(str).head(300).tolist()
            st.selectbox("Gallery view", ids, key="labelset_sv_pick")
            g1, g2 = st.columns(2)
            g1.button(
                "Add view as positive",
                on_click=_add_gallery,
                args=(res, "positive"),
                key="ls_sv_pos",
            )
            g2.button(
                "Add view as negative",
                on_click=_add_gallery,
                args=(res, "negative"),
                key="ls_sv_neg",
            )
        st.file_uploader(
            "A street-level photo (JPG or PNG)", type=["jpg", "jpeg", "png"], key="labelset_photo"
        )
        p1, p2 = st.columns(2)
        p1.button(
            "Add photo as positive", on_click=_add_upload, args=(res, "positive"), key="ls_up_pos"
        )
        p2.button(
            "Add photo as negative", on_click=_add_upload, args=(res, "negative"), key="ls_up_neg"
        )


def _results(res, cur: dict, on_fly) -> None:
    model = cur["scored"]["model"]
    lo, hi = cur["range"]
    tkey = cur["threshold_key"]
    if tkey not in st.session_state:
        st.session_state[tkey] = float(cur["threshold"])
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Hits",
        f"{cur['n_hits']:,}",
        help=f"places of {len(res.cells):,} scoring at least the threshold",
    )
    m2.metric(
        "Model",
        "logistic" if model.mode == "logistic" else "similarity",
        help=f"{model.n_positive} positive, {model.n_negative} negative, {model.n_background} background places",
    )
    timings = {**cur["scored"]["timings_ms"], **cur["timings_ms"]}
    m3.metric("Computed in", f"{sum(timings.values()):.0f} ms", help=str(timings))
    st.slider(
        "Threshold" + (" (probability)" if model.mode == "logistic" else " (cosine similarity)"),
        float(lo),
        float(hi),
        key=tkey,
        step=0.01,
    )
    if cur["overlay"] is not None:
        legend(cur["overlay"]["legend"])
    review = cur["review"]
    if review.empty:
        st.info("No unlabelled place scores at or above the threshold.")
    else:
        st.markdown("**Top hits** (not yet labelled): confirm or reject them to refine the set")
        for i, r in enumerate(review.itertuples(index=False)):
            extra = " · ".join(
                str(getattr(r, c)) for c in ("country", "landcover") if hasattr(r, c)
            )
            h1, h2, h3, h4 = st.columns([5, 1, 1, 1], vertical_alignment="center")
            h1.markdown(
                f"**#{int(r.rank)}** {fmt_latlon(r.lat, r.lon)} · score **{r.score:.3f}**"
                + (f" · {extra}" if extra else "")
            )
            h2.button(
                "Fly here",
                key=f"ls_fly_{i}",
                on_click=on_fly,
                args=(float(r.lat), float(r.lon)),
                width="stretch",
            )
            h3.button(
                "Confirm",
                key=f"ls_confirm_{i}",
                on_click=_label_cell,
                args=(res, "positive", r.cell_id),
                width="stretch",
            )
            h4.button(
                "Reject",
                key=f"ls_reject_{i}",
                on_click=_label_cell,
                args=(res, "negative", r.cell_id),
                width="stretch",
            )
    _quality(res, cur)


def _quality(res, cur: dict) -> None:
    labelset = cur["set"]
    if len(labelset) < 2 or cur["scored"]["model"].mode != "logistic":
        st.caption("Quality: the cross-validated precision appears from two examples on.")
        return
    t = time.perf_counter()
    curve = ls_logic.quality(res, labelset, cur["threshold"])
    ms = (time.perf_counter() - t) * 1000
    import plotly.graph_objects as go

    fig = go.Figure()
    for col, color, dash in (("precision", POSITIVE_COLOR, "solid"), ("recall", "#64d2ff", "dash")):
        fig.add_trace(
            go.Scatter(
                x=curve["examples"], y=curve[col], mode="lines+markers", name=col,
                line={"color": color, "dash": dash, "width": 3 if dash == "solid" else 2},
                connectgaps=False,
            )
        )  # fmt: skip
    fig.update_layout(
        height=220,
        margin={"l": 10, "r": 10, "t": 30, "b": 30},
        title={
            "text": "Cross-validated precision / recall of the set at the threshold",
            "font": {"size": 13},
        },
        xaxis={
            "title": "examples (in the order added)",
            "dtick": 1 if int(curve["examples"].max()) <= 15 else 5,
        },
        yaxis={"range": [-0.02, 1.02]},
        legend={"orientation": "h", "y": -0.3},
    )
    st.plotly_chart(fig, config=PLOT_CONFIG, key="labelset_curve")
    last = curve.iloc[-1]
    fmt = lambda v: "n/a" if not np.isfinite(v) else f"{v:.2f}"  # noqa: E731
    st.caption(
        f"Each example is scored by a model fitted without it (leave-one-out up to 30 examples, "
        f"then 10 folds): precision {fmt(last['precision'])}, recall {fmt(last['recall'])} with "
        f"{int(last['examples'])} examples ({ms:.0f} ms)."
    )


def _save_load(res, labelset: LabelSet, cur: dict | None) -> None:
    st.markdown("**Export and load**")
    stem = "".join(ch if ch.isalnum() else "_" for ch in labelset.name).strip("_") or "labels"
    e1, e2, e3 = st.columns(3)
    if cur is not None:
        scored, threshold = cur["scored"], cur["threshold"]
        e1.download_button(
            "Hits GeoParquet",
            lambda: ls_logic.export_hits(res, labelset, scored, threshold, "parquet"),
            file_name=f"{stem}_hits.parquet",
            mime="application/vnd.apache.parquet",
            on_click="ignore",
            key="labelset_dl_parquet",
            width="stretch",
        )
        e2.download_button(
            "Hits GeoJSON",
            lambda: ls_logic.export_hits(res, labelset, scored, threshold, "geojson"),
            file_name=f"{stem}_hits.geojson",
            mime="application/geo+json",
            on_click="ignore",
            key="labelset_dl_geojson",
            width="stretch",
        )
    if len(labelset):
        e3.download_button(
            "Label set GeoJSON",
            ls_logic.save_set(labelset),
            file_name=f"{stem}.geojson",
            mime="application/geo+json",
            on_click="ignore",
            key="labelset_dl_set",
            width="stretch",
        )
    st.file_uploader(
        "Load a label set (GeoJSON, up to 5 MB): it becomes a new set",
        type=["geojson", "json"],
        key="labelset_file",
        on_change=_load,
        args=(res,),
    )
