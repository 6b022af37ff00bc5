"""Downstream predictions of the run's heads at the point, beside the world's ground truth."""

from __future__ import annotations

import html

import numpy as np
import streamlit as st

from app.logic import labels
from app.logic.labels import UNCERTAIN_BELOW

TOP = 5
BAR_CSS = """<style>
.gair-bars{margin:0 0 .8rem 0;font-size:.85rem}
.gair-bar-title{font-weight:600;margin-bottom:.3rem}
.gair-bar-record{opacity:.7;font-size:.78rem;margin:-.2rem 0 .3rem 0}
.gair-bar{display:flex;align-items:center;gap:.5rem;margin:.15rem 0}
.gair-bar-name{flex:0 0 42%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.gair-bar-track{flex:1;height:.8rem;background:rgba(255,255,255,.08);border-radius:3px}
.gair-bar-track span{display:block;height:100%;border-radius:3px}
.gair-bar-p{flex:0 0 2.5rem;text-align:right;font-variant-numeric:tabular-nums}
</style>"""
INPUT_LABELS = {
    "inr": "the point's INR embedding",
    "location": "the location embedding",
    "inr+location": "the INR and location embeddings",
}
# why the answers at a point are best guesses (`labels.caveat_at`): the panel's warning ...
CAVEAT_WARNINGS = {
    "sea": (
        "This point is at sea in the demo world's land mask. The heads were trained on land "
        "points only, so what they say here describes no place: each answer below is a best "
        "guess, not a prediction."
    ),
    "unseen": (
        "This point lies in the demo world's unseen region, held out whole from training: the "
        "model saw none of its imagery or street views and the heads none of its points "
        "(docs/WORLD.md). The heads extrapolate here and their probabilities are not "
        "calibrated for it: each answer below is a best guess, shown with the heads' record "
        "on this region."
    ),
}
# ... a number's label
GUESS_LABELS = {"sea": "best guess, at sea", "unseen": "best guess, unseen region"}
# ... and which places each split's record was measured on
RECORD_PLACES = {"test": "test places", "unseen": "the unseen region's places"}
LABELS = {
    "koppen": "Koppen climate",
    "landcover": "Land cover (IGBP)",
    "continent": "Continent",
    "elevation_m": "Elevation",
    "population": "Population intensity",
    "country": "Country",
    "is_land": "Land",
    "split": "Split (training data)",
}


def truth_table(truth: dict | None) -> None:
    if not truth:  # an index built from the user's imagery has no ground truth
        return
    rows = []
    for key, value in truth.items():
        if isinstance(value, float):
            value = f"{value:,.0f} m" if key == "elevation_m" else f"{value:.2f}"
        rows.append({"label": LABELS.get(key, key), "ground truth (demo world)": str(value)})
    st.dataframe(rows, hide_index=True, width="stretch")


def render(res, result: dict) -> None:
    preds = result.get("predictions")
    truth = result.get("truth") or {}
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
    caveat = next((p["caveat"] for p in preds.values() if p.get("caveat")), None)
    if caveat:
        st.warning(CAVEAT_WARNINGS[caveat])
    # the record that fits the place: the unseen region's own where the point lies in it
    record_split = "unseen" if caveat == "unseen" else "test"
    scores = labels.head_scores(res, record_split)
    where = RECORD_PLACES[record_split]
    if regression:
        cols = st.columns(len(regression))
        for col, (name, p) in zip(cols, regression):
            t = truth.get(name)
            unit = " m" if name == "elevation_m" else ""
            col.metric(
                f"{LABELS.get(name, name)} ({GUESS_LABELS.get(p.get('caveat'), 'predicted')})",
                f"{p['value']:,.1f}{unit}",
                delta=None
                if t is None
                else f"{p['value'] - t:+,.1f}{unit} vs truth {t:,.1f}{unit}",
                delta_color="off",
                help=p.get("units") or None,
            )
            if p.get("interval"):
                lo, hi = p["interval"]
                inside = (
                    ""
                    if t is None
                    else (" · truth inside" if lo <= t <= hi else " · truth outside")
                )
                held = scores.get(name, {}).get(f"interval{round(100 * p['level'])}_coverage")
                held = "" if held is None else f" · held the truth at {held:.0%} of {where}"
                col.caption(
                    f"{p['level']:.0%} range {lo:,.0f} to {hi:,.0f}{unit}{inside}{held}"
                    if abs(hi - lo) >= 10
                    else f"{p['level']:.0%} range {lo:,.2f} to {hi:,.2f}{unit}{inside}{held}"
                )
    for i in range(0, len(classification), 2):
        cols = st.columns(2)
        for col, (name, p) in zip(cols, classification[i : i + 2]):
            with col:
                _class_bars(name, p, truth.get(name), scores.get(name, {}), where)
    if not truth:
        st.caption(
            f"Heads: probes trained by `gair eval`; inputs: {_inputs_note(preds)}. This index's "
            "imagery has no ground-truth labels to compare them with."
        )
        return
    st.caption(
        "Heads: probes trained by `gair eval` on the training split, chosen on one half of the "
        f"val split's blocks and calibrated on the other; inputs: {_inputs_note(preds)}. "
        f"A class under p {UNCERTAIN_BELOW:.1f} is shown as uncertain; a number's range holds "
        "the truth for that share of held-out val points with a similar prediction (split "
        "conformal); how often each head was right, and each range held, is measured by "
        "`gair eval` on the test split's held-out places (on the unseen region's, for a point "
        "in it) and read from the run's eval.json. Truth: the demo world's label layers at the "
        "point."
    )
    with st.expander("All ground-truth labels at the point"):
        truth_table(truth)


def _inputs_note(preds: dict) -> str:
    """Which embedding each head reads, e.g. "koppen: the INR and location embeddings; ..."."""
    by_input: dict[str, list[str]] = {}
    for name, p in preds.items():
        by_input.setdefault(p.get("input", "inr"), []).append(LABELS.get(name, name))
    return "; ".join(f"{', '.join(v)} from {INPUT_LABELS.get(k, k)}" for k, v in by_input.items())


def answer_text(p: dict) -> str:
    """A class head's answer as a panel shows it: the class, or why it is only a best guess."""
    guess = f"best guess {p['top']}, p {p['top_p']:.2f}"
    if p.get("caveat") == "sea":
        return f"not for the sea ({guess})"
    if p.get("caveat") == "unseen":
        return f"outside the training area ({guess})"
    return f"uncertain ({guess})" if p.get("uncertain") else p["top"]


def _class_bars(
    name: str, p: dict, truth_value, scores: dict | None = None, where: str = "test places"
) -> None:
    """The top classes' probabilities as HTML bars (a plotly figure per task cost ~30 ms of
    CPU per click under the GIL: benchmarks/bench_load.py), under a line with the head's
    accuracy and calibration error on `where` (test's places, or the unseen region's) when
    eval.json has them."""
    probs = np.asarray(p["probs"])
    classes = p["classes"]
    rows = []
    for j in np.argsort(-probs)[:TOP]:
        colour = "#34c759" if classes[j] == truth_value else "#5b8def"
        rows.append(
            f'<div class="gair-bar"><span class="gair-bar-name">{html.escape(str(classes[j]))}</span>'
            f'<span class="gair-bar-track"><span style="width:{100 * float(probs[j]):.1f}%;'
            f'background:{colour}"></span></span><span class="gair-bar-p">{probs[j]:.2f}</span></div>'
        )
    answer = answer_text(p)
    title = f"{html.escape(LABELS.get(name, name))}: {html.escape(str(answer))}"
    if truth_value is not None:
        hit = "✓" if p["top"] == truth_value else "✗"
        title += f" ({hit} truth: {html.escape(str(truth_value))})"
    record = ""
    if scores and "accuracy" in scores:
        ece = f", calibration error {scores['ece']:.2f}" if "ece" in scores else ""
        record = (
            f'<div class="gair-bar-record">right at {scores["accuracy"]:.0%} of {where}{ece}</div>'
        )
    st.markdown(
        f'{BAR_CSS}<div class="gair-bars" title="probability of each class (top {TOP})">'
        f'<div class="gair-bar-title">{title}</div>{record}{"".join(rows)}</div>',
        unsafe_allow_html=True,
    )
