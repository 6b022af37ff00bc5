"""Embedding panel: the INR embedding of the clicked point, its agreement with the location
embedding, and how it varies across the RS tile cell around the point."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app.panels.common import PLOT_CONFIG


def render(res, result: dict) -> None:
    import plotly.graph_objects as go  # lazily: the first page needs no chart

    emb = np.asarray(result["embedding"])
    loc = np.asarray(result["location_embedding"])
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "Embedding size",
        f"{len(emb)}",
        help="L2-normalised float32, the space shared with street views and locations",
    )
    c2.metric(
        "cos(INR, location)",
        f"{result['location_similarity']:.3f}",
        help="cosine similarity of the point's INR embedding (from the RS image) with its location-encoder embedding (from the coordinates alone)",
    )
    nb = result.get("neighbourhood")
    if nb is not None:
        sims = np.asarray(nb["similarity"])
        c3.metric(
            "Min similarity in tile cell",
            f"{sims.min():.3f}",
            help="lowest cosine similarity to the clicked point's embedding on the grid below",
        )

    fig = go.Figure(
        go.Heatmap(
            z=np.stack([emb, loc]),
            y=["INR point", "location"],
            colorscale="RdBu_r",
            zmid=0.0,
            colorbar={"thickness": 10, "len": 1.0},
            hovertemplate="%{y} dim %{x}: %{z:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=150,
        margin={"l": 10, "r": 10, "t": 28, "b": 24},
        title={"text": "Embedding (heat strip, one column per dimension)", "font": {"size": 13}},
    )
    fig.update_xaxes(title=None, showgrid=False)
    st.plotly_chart(fig, config=PLOT_CONFIG, key="emb_strip")

    if nb is not None:
        lat0, lon0 = result["query"]["lat"], result["query"]["lon"]
        fig = go.Figure(
            go.Heatmap(
                z=nb["similarity"],
                x=nb["lon"],
                y=nb["lat"],
                colorscale="Inferno",
                colorbar={"title": {"text": "cosine", "side": "right"}, "thickness": 12},
                hovertemplate="lat %{y:.3f}, lon %{x:.3f}<br>similarity %{z:.4f}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[lon0],
                y=[lat0],
                mode="markers",
                marker={
                    "symbol": "x",
                    "size": 13,
                    "color": "#00e5ff",
                    "line": {"width": 2, "color": "#00e5ff"},
                },
                name="clicked point",
                hovertemplate="clicked point<extra></extra>",
            )
        )
        fig.update_layout(
            height=420,
            margin={"l": 10, "r": 10, "t": 36, "b": 10},
            title={
                "text": "How the embedding varies around the point",
                "font": {"size": 13},
            },
            showlegend=False,
        )
        fig.update_xaxes(title="longitude", constrain="domain")
        fig.update_yaxes(
            title="latitude", scaleanchor="x", scaleratio=1 / max(np.cos(np.radians(lat0)), 0.2)
        )
        left, right = st.columns([3, 2], vertical_alignment="center")
        left.plotly_chart(fig, config=PLOT_CONFIG, key="emb_neighbourhood")
        right.caption(
            "Cosine similarity to the clicked point of INR queries on a 9 x 9 grid spanning the RS "
            "tile cell around the point: the square between the four tile "
            "centres whose chips the point's embedding blends. Every point inside reuses those four "
            "encoder passes; the INR (NILI) query interpolates their tokens at each exact position, "
            "so the embedding varies continuously within and across cells."
        )
