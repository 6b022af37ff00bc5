"""Cross-view search: a street view (from the gallery, or uploaded) -> where was it taken?
Its SV embedding is compared with every place: a heatmap on the map and the top places."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import logic
from app.panels import places as places_panel
from app.panels import streetviews as sv_panel
from app.panels.common import export_buttons, fmt_latlon, rendered_badge, upscale

GALLERY_CHOICES = 300


def _run_search(res, k: int, **kw) -> None:
    try:
        st.session_state["search"] = logic.image_search(res, k=k, **kw)
        st.session_state["heat_source"] = "image"
        st.session_state["search_error"] = None
    except ValueError as err:
        st.session_state["search_error"] = str(err)


def render(res, k: int, on_fly) -> None:
    gallery = res.gallery
    mode = st.radio(
        "Query",
        ["Gallery street view", "Upload an image"],
        horizontal=True,
        key="search_mode",
        label_visibility="collapsed",
    )
    if mode == "Gallery street view":
        if gallery.empty:
            st.info("This index has no street-view gallery.")
        else:
            n = min(GALLERY_CHOICES, len(gallery))
            if "search_pick" not in st.session_state:
                st.session_state["search_pick"] = 0

            def random_pick():
                st.session_state["search_pick"] = int(np.random.default_rng().integers(n))

            labels = [
                f"{r.sv_id}  ({fmt_latlon(r.lat, r.lon)}"
                + (f", {r.split})" if isinstance(getattr(r, "split", None), str) else ")")
                for r in gallery.head(n).itertuples()
            ]
            c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
            i = c1.selectbox(
                "Gallery view", range(n), format_func=lambda j: labels[j], key="search_pick"
            )
            c2.button("Random", on_click=random_pick, width="stretch")
            row = gallery.iloc[int(i)]
            p1, p2 = st.columns([1, 5])
            with p1:
                st.image(upscale(logic.streetview_image(res, row), 160), width=160)
                if logic.is_rendered(res):
                    st.markdown(rendered_badge(), unsafe_allow_html=True)
            with p2:
                where = (
                    f"heading {row['heading_deg']:.0f}°, "
                    if "heading_deg" in row and row["heading_deg"] == row["heading_deg"]
                    else ""
                ) + (f"split `{row['split']}`. " if isinstance(row.get("split"), str) else "")
                st.caption(
                    f"{where}The true location is hidden from the search and shown afterwards (green dot)."
                )
                st.button(
                    "Where was this taken?",
                    type="primary",
                    on_click=_run_search,
                    args=(res, k),
                    kwargs={"sv_row": row},
                )
    else:
        up = st.file_uploader(
            "A street-level photo (JPG or PNG, up to 20 MB)",
            type=["jpg", "jpeg", "png"],
            key="search_upload",
        )
        if up is not None and st.session_state.get("search_upload_id") != up.file_id:
            st.session_state["search_upload_id"] = up.file_id
            try:
                image = logic.decode_upload(up.getvalue(), up.name)
            except ValueError as err:
                st.session_state["search_error"] = f"Cannot use {up.name}: {err}"
            else:
                _run_search(res, k, image=image)
                if st.session_state.get("search_error") is None:
                    st.rerun()  # the map and the sidebar (drawn earlier in this run) follow
    if st.session_state.get("search_error"):
        st.error(st.session_state["search_error"])

    result = st.session_state.get("search")
    if result is None:
        st.caption(
            "Pick a view and press the button, or upload a photo: the map then shows where the model thinks it was taken."
        )
        return
    st.divider()
    novelty = result.get("novelty")
    if novelty and novelty["out_of_distribution"]:
        st.warning(logic.novelty_message(novelty))
    elif result["query"].get("sv_id") is None and not logic.has_gallery(res):
        st.info(
            "This index has no street-view gallery, so there is nothing to tell whether the "
            "photo is like what the model was trained on: read the places below with care."
        )
    c1, c2 = st.columns([1, 5])
    with c1:
        st.image(
            upscale(result["image"], 160),
            caption="query"
            + (
                " (rendered view)"
                if result["query"].get("sv_id") and logic.is_rendered(res)
                else ""
            ),
            width=160,
        )
    with c2:
        m1, m2, m3 = st.columns(3)
        if result["guess"]:
            m1.metric(
                "Best place",
                fmt_latlon(*result["guess"]),
                delta="uncertain: likely noise" if result.get("uncertain") else None,
                delta_color="off",
                help="the place whose RS-INR embedding is most like the view's (first of Top places)",
            )
        if result.get("located"):
            m2.metric(
                "Estimated location",
                fmt_latlon(*result["located"]),
                help="the location encoder's answer: the median of its probabilities over every "
                "place, the point with the least expected error in km",
            )
        if result["error_km"] is not None:
            m3.metric("True location", fmt_latlon(*result["query"]["truth"]))
            e1, e2, _ = st.columns(3)
            e1.metric("Error of the best place", f"{result['error_km']:,.0f} km")
            if result.get("located_error_km") is not None:
                e2.metric("Error of the estimate", f"{result['located_error_km']:,.0f} km")
        st.caption(
            "On the map: the heatmap is this view's similarity to every place (switch with *Heatmap shows* in the sidebar); cyan = top places, green = true location."
        )
        d1, d2, _ = st.columns([1, 1, 3])
        export_buttons(d1, d2, result, "gair_search", key="search")
    t1, t2 = st.tabs(["Top places", "Similar gallery views"])
    with t1:
        places_panel.render(res, result, on_fly, key_prefix="search_place")
    with t2:
        sv_panel.render(res, result, on_fly, key_prefix="search_sv")
