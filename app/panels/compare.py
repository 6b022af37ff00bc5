"""Compare two points: cosine similarity of their INR embeddings (and location embeddings)."""

from __future__ import annotations

import streamlit as st

from app import logic
from app.panels.common import fmt_latlon


def render(res, point, set_b) -> None:
    if point is None:
        st.info("Select a point first (click the map); it becomes A.")
        return
    st.markdown(f"**A** = selected point: {fmt_latlon(*point)}")
    with st.form("compare_form", border=False):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        b = st.session_state.get("compare_b")
        text = c1.text_input(
            "B (lat, lon)",
            value="" if b is None else f"{b[0]:.4f}, {b[1]:.4f}",
            placeholder="e.g. 40.71, -74.01",
        )
        submitted = c2.form_submit_button("Compare", width="stretch")
    if submitted:
        try:
            set_b(*logic.parse_coordinates(text))
        except ValueError as err:
            st.error(f"B: {err}")
            return
    b = st.session_state.get("compare_b")
    if b is None:
        st.caption(
            "Type B's coordinates, or use `Set as B` after selecting another point. B shows as a red dot on the map."
        )
        return
    try:
        cmp = logic.compare_points(res, point, b)
    except ValueError as err:
        st.error(str(err))
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("cosine (INR embeddings)", f"{cmp['cosine']:.3f}")
    c2.metric("cosine (location embeddings)", f"{cmp['location_cosine']:.3f}")
    c3.metric("distance", f"{cmp['distance_km']:,.0f} km")
    if not cmp.get("truth_a") or not cmp.get("truth_b"):
        return  # an index built from the user's imagery has no ground truth
    rows = [
        {"label": k, "A": str(cmp["truth_a"][k]), "B": str(cmp["truth_b"][k])}
        for k in cmp["truth_a"]
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
