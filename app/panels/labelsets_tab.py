"""The *Label & find* tab: the active set's examples, adding gallery views and photos, the
hits with Fly here / Confirm / Reject, the learning curve, save and load. The session state,
map hooks and sidebar live in `app.panels.labelsets`; this module's callbacks edit the set
through `labelsets.store`."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from app import logic
from app.logic import labelsets as ls_logic
from app.panels.common import PLOT_CONFIG, fmt_latlon, legend
from app.panels.labelsets import (
    FIRST_SET,
    POSITIVE_COLOR,
    active,
    current,
    init,
    message,
    store,
    warm_up,
)
from index.labelset import LabelSet, check_name

# --------------------------------------------------------------------------- callbacks


def _label_cell(res, label: str, cell_id: str) -> None:
    try:
        store(ls_logic.add_cell(res, active(), label, cell_id))
        message(None)
    except ValueError as err:
        message(f"Could not add cell {cell_id}: {err}")


def _remove(i: int) -> None:
    try:
        store(active().remove(i))
    except ValueError as err:
        message(str(err))


def _new_set() -> None:
    name = st.session_state.get("labelset_new_name", "")
    sets = st.session_state["labelsets"]
    try:
        name = check_name(name or f"Set {len(sets) + 1}")
    except ValueError as err:
        message(str(err))
        return
    if name in sets:
        message(f"a set named {name!r} exists already")
        return
    sets[name] = LabelSet(name)
    st.session_state["labelset_active"] = name
    st.session_state["labelset_new_name"] = ""
    message(None)


def _delete_set() -> None:
    sets = st.session_state["labelsets"]
    sets.pop(st.session_state["labelset_active"], None)
    if not sets:
        sets[FIRST_SET] = LabelSet(FIRST_SET)
    st.session_state["labelset_active"] = next(iter(sets))


def _add_gallery(res, label: str) -> None:
    sv_id = st.session_state.get("labelset_sv_pick")
    try:
        store(ls_logic.add_gallery_view(res, active(), label, str(sv_id)))
        message(None)
    except ValueError as err:
        message(str(err))


def _add_upload(res, label: str) -> None:
    up = st.session_state.get("labelset_photo")
    if up is None:
        message("Choose a photo first.")
        return
    try:
        image = logic.decode_upload(up.getvalue(), up.name)
        store(ls_logic.add_upload(res, active(), label, image, up.name))
        message(None)
    except ValueError as err:
        message(f"Cannot use {up.name}: {err}")


def _load(res) -> None:
    """Load an uploaded GeoJSON as a new set; on any problem a message, nothing changed."""
    up = st.session_state.get("labelset_file")
    if up is None:
        return
    try:
        loaded = ls_logic.load_set(res, up.getvalue(), up.name)
    except ValueError as err:
        message(f"Could not load {up.name}: {err}")
        return
    sets = st.session_state["labelsets"]
    name, n = loaded.name, 2
    while name in sets:
        name, n = f"{loaded.name} ({n})", n + 1
    sets[name] = loaded.renamed(name)
    st.session_state["labelset_active"] = name
    warm_up(loaded)
    message(None)


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
