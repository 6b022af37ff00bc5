"""Small shared drawing helpers for the panels."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from app import logic, raster

PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def fmt_latlon(lat: float, lon: float) -> str:
    return f"{abs(lat):.4f}°{'N' if lat >= 0 else 'S'}, {abs(lon):.4f}°{'E' if lon >= 0 else 'W'}"


def upscale(img: np.ndarray, size: int = 160) -> np.ndarray:
    """Rendered views are small (64 px): upscale for display (bicubic)."""
    if img.shape[0] >= size:
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))


def legend(leg: raster.Legend | None) -> None:
    """A compact HTML legend for the map overlay (no branca/d3: nothing from a CDN)."""
    if leg is None:
        return
    if leg.kind == "continuous":
        st.markdown(
            f"""<div class="gair-legend"><div class="gair-legend-title">{leg.title}</div>
            <div class="gair-legend-bar" style="background:{leg.gradient_css()}"></div>
            <div class="gair-legend-ticks"><span>{leg.vmin:.3g}</span><span>{leg.vmax:.3g}</span></div></div>""",
            unsafe_allow_html=True,
        )
    else:
        items = "".join(
            f'<span class="gair-chip"><i style="background:{color}"></i>{name}</span>'
            for name, color in (leg.classes or [])
        )
        st.markdown(
            f'<div class="gair-legend"><div class="gair-legend-title">{leg.title}</div><div>{items}</div></div>',
            unsafe_allow_html=True,
        )


def rendered_badge() -> str:
    return '<span class="gair-badge">rendered view</span>'


def marker_key(search: bool = False) -> None:
    """What the map's markers mean."""
    items = [
        '<span class="gair-chip"><i style="background:#2a81cb;border-radius:50% 50% 50% 0"></i>selected point</span>',
        '<span class="gair-chip"><i style="background:#00e5ff;border-radius:50%"></i>similar places</span>',
        '<span class="gair-chip"><i style="background:#ffd60a;transform:rotate(45deg)"></i>nearest street views</span>',
    ]
    if search:
        items.append(
            '<span class="gair-chip"><i style="background:#34c759;border-radius:50%"></i>true location of the searched view</span>'
        )
    st.markdown(f'<div class="gair-legend">{"".join(items)}</div>', unsafe_allow_html=True)


def export_buttons(csv_col, geojson_col, result: dict, stem: str, **button_kw) -> None:
    """CSV and GeoJSON download buttons for a result (`logic.to_csv` / `logic.to_geojson`),
    named `{stem}.csv` / `{stem}.geojson`; `button_kw` (e.g. width) goes to both, and a
    `key` gets `_csv` / `_geojson` appended."""
    key = button_kw.pop("key", None)
    for col, label, data, ext, mime in (
        (csv_col, "CSV", logic.to_csv(result), "csv", "text/csv"),
        (geojson_col, "GeoJSON", logic.to_geojson(result), "geojson", "application/geo+json"),
    ):
        col.download_button(
            label,
            data,
            file_name=f"{stem}.{ext}",
            mime=mime,
            on_click="ignore",
            key=f"{key}_{ext}" if key else None,
            **button_kw,
        )
