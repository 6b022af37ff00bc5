"""Similar places: the top-k grid cells by embedding similarity (markers on the map) and the
similarity heatmap over all cells (one image overlay on the map)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.panels.common import legend


def render(res, result: dict, on_fly, key_prefix: str = "place") -> None:
    places: pd.DataFrame = result["places"]
    if result.get("overlay"):
        legend(result["overlay"]["legend"])
    st.caption(
        f"Top {len(places)} of {len(res.cells):,} grid cells ({res.manifest['grid']['spec']}) by cosine similarity; "
        "cyan dots on the map. The heatmap colours the most similar 20% of all cells."
    )
    show = places.copy()
    st.dataframe(
        show,
        hide_index=True,
        column_config={
            "similarity": st.column_config.ProgressColumn(
                "similarity",
                min_value=float(min(0.0, show["similarity"].min())),
                max_value=1.0,
                format="%.3f",
            ),
            "distance_km": st.column_config.NumberColumn("distance (km)", format="%.0f"),
            "lat": st.column_config.NumberColumn(format="%.3f"),
            "lon": st.column_config.NumberColumn(format="%.3f"),
            "elevation_m": st.column_config.NumberColumn("elevation (m)", format="%.0f"),
        },
        height=min(38 + 35 * len(show), 420),
    )
    options = [
        f"#{int(r['rank'])}  {r['lat']:.3f}, {r['lon']:.3f}"
        + (f"  ({r['country']})" if r.get("country") else "")
        for _, r in places.iterrows()
    ]
    if options:
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        pick = c1.selectbox("Go to a similar place", options, key=f"{key_prefix}_pick")
        row = places.iloc[options.index(pick)]
        c2.button(
            "Fly there",
            key=f"{key_prefix}_fly",
            on_click=on_fly,
            args=(float(row["lat"]), float(row["lon"])),
            width="stretch",
        )
