"""About: what the model is, the checkpoint's metrics, the index, data attributions."""

from __future__ import annotations

import streamlit as st

from app import logic
from app.resources import data_attributions

MODEL_TEXT = """
**GAIR** (geo-aligned implicit representations) learns one embedding space shared by three views
of a place: overhead **remote-sensing** imagery, ground-level **street views**, and the
**location** itself (lat/lon). Its RS encoder turns an image chip into a grid of tokens; an
**implicit neural representation (INR)** then answers a *point query*: the embedding at any
exact coordinate is interpolated from the surrounding tokens (NILI: neighbourhood implicit
linear interpolation), not pooled over a whole patch. Contrastive losses align that point
embedding with the street view taken there and with the location encoder's embedding.

In this app every click embeds the exact clicked coordinate: the app reads the index's RS
imagery (the demo world's raster, or the rasters the index was built from) by the canonical tiling (`gair.embed.Embedder`: the four tiles around the point, blended
continuously), then compares the embedding with every indexed place (FAISS) and every gallery
street view (cross-view retrieval), and feeds it to the run's prediction heads.
"""


def render(res) -> None:
    st.markdown(MODEL_TEXT)
    cfg = res.run_config.get("model", {})
    st.subheader("Checkpoint")
    rows = [
        ("run dir", str(res.run_dir)),
        ("weights SHA-256", str(res.run_config.get("weights_sha256", ""))[:16] + "..."),
        ("model", cfg.get("name", "?")),
        ("embedding size", cfg.get("embed_dim", "?")),
        (
            "RS encoder",
            f"{cfg.get('rs', {}).get('encoder', '?')} {cfg.get('rs', {}).get('img_size', '?')} px, bands {', '.join(cfg.get('rs', {}).get('bands', []))}",
        ),
        (
            "SV encoder",
            f"{cfg.get('sv', {}).get('encoder', '?')} {cfg.get('sv', {}).get('img_size', '?')} px",
        ),
        ("location encoder", cfg.get("location", {}).get("encoder", "?")),
        (
            "INR point query",
            f"{cfg.get('inr', {}).get('mode', '?')} ({cfg.get('inr', {}).get('decoder', '?')} decoder)",
        ),
        (
            "prediction heads",
            ", ".join(res.head_names)
            if res.head_names
            else f"none (`gair eval --checkpoint {res.run_dir}`)",
        ),
    ]
    st.dataframe([{"": a, "value": str(b)} for a, b in rows], hide_index=True, width="stretch")

    st.subheader("Metrics")
    if res.eval_result:
        from gair.evaluation.report import markdown_table

        try:
            st.markdown(markdown_table(res.eval_result))
        except (KeyError, TypeError, ValueError) as err:
            st.warning(f"eval.json could not be summarised: {err}")
        st.caption(
            "From `eval.json` (`gair eval`): the test split's held-out blocks; probes on frozen "
            "embeddings; 95% intervals from a bootstrap over the blocks."
        )
    elif res.run_config.get("metrics"):
        st.json(res.run_config["metrics"], expanded=False)
    else:
        st.info(
            f"No evaluation yet: `gair eval --checkpoint {res.run_dir}` writes the metrics table."
        )

    st.subheader("Index")
    m = res.manifest
    cells, svs = m.get("cells", {}), m.get("streetviews", {})
    rows = [
        ("index dir", str(res.settings.index)),
        (
            "grid",
            f"{m.get('grid', {}).get('spec')}{' (land only)' if m.get('grid', {}).get('land_only') else ''}{' bbox ' + str(m['grid']['bbox']) if m.get('grid', {}).get('bbox') else ''}",
        ),
        (
            "places (cells)",
            f"{cells.get('count', len(res.cells)):,}: FAISS {cells.get('factory')}, recall@10 {cells.get('recall_at_10')}",
        ),
        (
            "street-view gallery",
            f"{svs.get('count', len(res.gallery)):,} ({svs.get('source', '?')} views): FAISS {svs.get('factory')}",
        ),
        ("metric", m.get("metric", "")),
        (
            "built",
            f"{m.get('built_at', '?')} in {m.get('build_seconds', '?')} s, engine {m.get('engine', '?')}",
        ),
        ("encoder passes per point", f"{m.get('encoder_passes_per_point', float('nan')):.3f}"),
        ("imagery", _imagery(res)),
        ("opened in", f"{res.open_seconds:.1f} s"),
    ]
    st.dataframe([{"": a, "value": str(b)} for a, b in rows], hide_index=True, width="stretch")

    st.subheader("Data")
    if logic.is_rendered(res):
        st.markdown(
            "Street views in this demo are **rendered views**: perspective images drawn from the "
            "world's layers at each gallery location (sky, horizon profile from elevation, ground "
            "and objects from land cover, climate and population). They are labelled *rendered view* "
            "wherever they appear. Real galleries come in through `gair data prepare`."
        )
    text = data_attributions()
    if text:
        with st.expander("Data sources and attributions (DATA.md)", expanded=False):
            st.markdown(text)
    elif res.world is not None:
        for name, src in res.world.info().get("sources", {}).items():
            st.markdown(f"- **{name}**: {src}")
    st.caption(
        "Runs with no network: Leaflet is served by this app (app/static/vendor), the basemap is "
        "the index's own imagery, online basemaps are off unless enabled in the sidebar."
    )


def _imagery(res) -> str:
    """The index's RS source in one line: the demo world, or the user's rasters / chips."""
    if res.world is not None:
        return f"demo world {res.world.path} (fingerprint {res.world.fingerprint})"
    record = res.manifest.get("source") or {}
    paths = record.get("path_absolute") or record.get("path") or []
    shown = ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
    return (
        f"{res.source_kind}: {shown or '?'} (fingerprint {getattr(res.source, 'fingerprint', '?')}); "
        "no ground-truth labels"
    )
