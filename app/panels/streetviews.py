"""Nearest street views: the gallery views whose SV embeddings are closest to the place's query
(`gair.place_query`: its INR embedding plus the run's weight x its location embedding), as
thumbnails (rendered views of the demo world, labelled as such)."""

from __future__ import annotations

import streamlit as st

from app import logic
from app.panels.common import fmt_latlon, rendered_badge, upscale

COLUMNS = 6


def render(res, result: dict, on_fly, key_prefix: str = "sv") -> None:
    svs = result["streetviews"]
    thumbs = result.get("thumbnails") or []
    if not logic.has_gallery(res):
        st.info("This index has no street-view gallery.")
        return
    if svs.empty:
        st.info("No gallery view matched.")
        return
    rendered = logic.is_rendered(res)
    if result.get("streetview_query"):
        st.caption(
            f"Matched by the place's {result['streetview_query']}; the mix was chosen on the "
            "validation split by `gair eval` (closest first view from held-out points)."
        )
    if rendered:
        st.markdown(
            f"{rendered_badge()} The demo gallery's images are **rendered** from the demo world's "
            "layers (sky, horizon from elevation, ground from land cover and climate, roadside "
            "signs in the colours of the country), not photographs.",
            unsafe_allow_html=True,
        )
    cols = st.columns(COLUMNS)
    for i, (img, (_, row)) in enumerate(zip(thumbs, svs.iterrows())):
        with cols[i % COLUMNS]:
            label = "rendered view" if rendered else "street view"
            dist = (
                f" · {row['distance_km']:,.0f} km away"
                if "distance_km" in row and row["distance_km"] == row["distance_km"]
                else ""
            )
            st.image(
                upscale(img),
                caption=f"#{int(row['rank'])} {label} · sim {row['similarity']:.3f}{dist}",
                width="stretch",
            )
            st.button(
                "Fly here",
                key=f"{key_prefix}_fly_{i}",
                on_click=on_fly,
                args=(float(row["lat"]), float(row["lon"])),
                help=f"select {fmt_latlon(row['lat'], row['lon'])} ({_heading(row)}{row['sv_id']})",
                width="stretch",
            )


def _heading(row) -> str:
    """ "heading 40°, " for a rendered view, "" for a photo (no heading recorded)."""
    h = row.get("heading_deg")
    return f"heading {float(h):.0f}°, " if h is not None and h == h else ""
