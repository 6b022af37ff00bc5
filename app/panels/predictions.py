"""Downstream predictions of the run's heads at the point, beside the world's ground truth."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app.panels.common import PLOT_CONFIG

TOP = 5
LABELS = {
    "koppen": "Koppen climate",
    "landcover": "Land cover (IGBP)",
    "continent": "Continent",
    "elevation_m": "Elevation",
    "population": "Population intensity",
    "country": "Country",
    "is_land": "Land",
}


def truth_table(truth: dict) -> None:
    rows = []
    for key, value in truth.items():
        if isinstance(value, float):
            value = f"{value:,.0f} m" if key == "elevation_m" else f"{value:.2f}"
        rows.append({"label": LABELS.get(key, key), "ground truth (demo world)": str(value)})
    st.dataframe(rows, hide_index=True, width="stretch")


def render(res, result: dict) -> None:
    preds = result.get("predictions")
    truth = result["truth"]
    if preds is None and getattr(res, "heads_error", None):
        st.warning(
            f"Predictions hidden: this run's heads cannot be used ({res.heads_error}). "
            f"Retrain them with `gair eval --checkpoint {res.run_dir}`."
        )
        truth_table(truth)
        return
    if preds is None:
        st.info(
            "This run has no prediction heads yet. Train them on frozen embeddings with\n\n"
            f"`gair eval --checkpoint {res.run_dir}`\n\n"
            "(it writes `heads.safetensors` and `eval.json` into the run dir; restart the app to load them)."
        )
        truth_table(truth)
        return
    classification = [(n, p) for n, p in preds.items() if p["kind"] == "classification"]
    regression = [(n, p) for n, p in preds.items() if p["kind"] == "regression"]
    if regression:
        cols = st.columns(len(regression))
        for col, (name, p) in zip(cols, regression):
            t = truth.get(name)
            unit = " m" if name == "elevation_m" else ""
            col.metric(
                f"{LABELS.get(name, name)} (predicted)",
                f"{p['value']:,.1f}{unit}",
                delta=None
                if t is None
                else f"{p['value'] - t:+,.1f}{unit} vs truth {t:,.1f}{unit}",
                delta_color="off",
                help=p.get("units") or None,
            )
    for i in range(0, len(classification), 2):
        cols = st.columns(2)
        for col, (name, p) in zip(cols, classification[i : i + 2]):
            with col:
                _class_bars(name, p, truth.get(name))
    st.caption(
        "Heads: probes trained by `gair eval` on frozen point embeddings; truth: the demo world's label layers at the point."
    )
    with st.expander("All ground-truth labels at the point"):
        truth_table(truth)


def _class_bars(name: str, p: dict, truth_value) -> None:
    import plotly.graph_objects as go  # lazily: the first page needs no chart

    probs = np.asarray(p["probs"])
    classes = p["classes"]
    order = np.argsort(-probs)[:TOP][::-1]
    names = [classes[j] for j in order]
    colors = ["#34c759" if classes[j] == truth_value else "#5b8def" for j in order]
    fig = go.Figure(
        go.Bar(
            x=probs[order],
            y=names,
            orientation="h",
            marker_color=colors,
            text=[f"{v:.2f}" for v in probs[order]],
            textposition="outside",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    hit = "✓" if p["top"] == truth_value else "✗"
    fig.update_layout(
        height=60 + 32 * len(order),
        margin={"l": 10, "r": 30, "t": 30, "b": 10},
        title={
            "text": f"{LABELS.get(name, name)}: {p['top']} ({hit} truth: {truth_value})",
            "font": {"size": 13},
        },
        xaxis={"range": [0, 1.15], "showgrid": False, "visible": False},
    )
    st.plotly_chart(fig, config=PLOT_CONFIG, key=f"pred_{name}")
