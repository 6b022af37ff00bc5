"""Beside the map: the selected point's summary (where, what the index knows there, the best
matches, the heads' answer, exports), or a welcome with example places to start from."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app.panels.common import export_buttons, fmt_latlon

EXAMPLES = {
    "Paris": (48.8566, 2.3522),
    "Sahara": (23.5, 11.0),
    "Amazon": (-3.4, -62.2),
    "Himalaya": (28.0, 86.9),
    "Tokyo": (35.68, 139.69),
    "Greenland": (72.0, -40.0),
}
REGIONAL_EXAMPLES = 6  # places of a regional index offered as starting points


def examples(res) -> dict[str, tuple[float, float]]:
    """Places to start from: famous places for the global demo; for an index over a smaller
    area, its own cells (the one nearest the middle, then some spread over the area)."""
    if res.extent.is_global:
        return EXAMPLES
    latlon = res.cell_latlon
    if not len(latlon):
        return {}
    mid_lat, mid_lon = res.extent.center
    order = [int(np.argmin(np.hypot(latlon[:, 0] - mid_lat, latlon[:, 1] - mid_lon)))]
    spread = np.linspace(0, len(latlon) - 1, REGIONAL_EXAMPLES + 1).astype(int)
    order += [int(i) for i in spread if int(i) not in order][: REGIONAL_EXAMPLES - 1]
    names = ["Middle of the area"] + [f"{latlon[i, 0]:.3f}, {latlon[i, 1]:.3f}" for i in order[1:]]
    return {n: (float(latlon[i, 0]), float(latlon[i, 1])) for n, i in zip(names, order)}


def truth_line(truth: dict | None) -> str:
    if not truth:
        return ""
    return (
        f'<div class="gair-kv">{truth["country"]} · {truth["continent"]} · climate <b>{truth["koppen"]}</b> · '
        f"<b>{truth['landcover']}</b> · elevation <b>{truth['elevation_m']:,.0f} m</b></div>"
    )


def point_summary(res, result, set_b) -> None:
    q = result["query"]
    st.markdown(
        f'<div class="gair-point">{fmt_latlon(q["lat"], q["lon"])}</div>', unsafe_allow_html=True
    )
    line = truth_line(result.get("truth"))
    if line:
        st.markdown(line, unsafe_allow_html=True)
    c1, c2 = st.columns(2)
    c1.metric(
        "cos(INR, location)",
        f"{result['location_similarity']:.3f}",
        help="the point's INR embedding vs its location-encoder embedding",
    )
    if len(result["places"]):
        top = result["places"].iloc[0]
        c2.metric(
            "Most similar place",
            f"{top['similarity']:.3f}",
            help=f"{fmt_latlon(top['lat'], top['lon'])}, {top.get('distance_km', float('nan')):,.0f} km away",
        )
    c3, c4 = st.columns(2)
    if len(result["streetviews"]):
        sv = result["streetviews"].iloc[0]
        c3.metric(
            "Nearest street view",
            f"{sv['distance_km']:,.0f} km",
            help=f"best gallery match by embedding ({sv['sv_id']}), similarity {sv['similarity']:.3f}",
        )
    preds = result.get("predictions")
    if preds:
        cls = [(n, p) for n, p in preds.items() if p["kind"] == "classification"]
        if cls:
            n, p = cls[0]
            c4.metric(
                f"Predicted {n}",
                "at sea"
                if p.get("caveat") == "sea"
                else "uncertain"
                if p.get("uncertain") or p.get("caveat")
                else p["top"],
                help=f"best guess {p['top']}, p {p['top_p']:.2f}"
                + ("" if p.get("caveat") else " (calibrated on val)"),
            )
    elif getattr(res, "heads_error", None):
        c4.metric("Predictions", "hidden", help=f"heads unusable: {res.heads_error}")
    else:
        c4.metric("Predictions", "no heads", help=f"gair eval --checkpoint {res.run_dir}")
    b1, b2, b3 = st.columns(3)
    export_buttons(b1, b2, result, "gair_point", width="stretch")
    b3.button(
        "Set as B",
        on_click=set_b,
        help="keep this point as B of the Compare tab, then select another point",
        width="stretch",
    )
    st.caption(
        f"Computed in {result['timings_ms']['total']:.0f} ms on the server (embedding, search, heatmap, views, heads)."
    )


def welcome(res, on_fly) -> None:
    st.markdown("#### Click anywhere on the map")
    truth = " beside the world's ground truth" if res.has_labels else ""
    st.markdown(
        "The app embeds **that exact coordinate** with GAIR's implicit (INR) point query, then shows "
        "its embedding, the nearest **street views**, **similar places** (heatmap + markers) and the "
        f"**predictions** of the run's heads{truth}."
    )
    places = examples(res)
    if not places:
        return
    st.markdown("Or try:")
    cols = st.columns(3)
    for i, (name, (lat, lon)) in enumerate(places.items()):
        cols[i % 3].button(
            name, key=f"example_{name}", on_click=on_fly, args=(lat, lon), width="stretch"
        )
