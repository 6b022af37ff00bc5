"""The *Label & find* tab (issue 16), driven headless with AppTest: a set in session state (as
map clicks build it) gives hits, Confirm / Reject / Remove edit it, exports are offered, a
bad GeoJSON upload is a message that leaves the set alone, a good one becomes a new set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.labelset import LabelSet, to_geojson_bytes

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
TIMEOUT = 300


@pytest.fixture(scope="module")
def res(app_paths):
    from app.resources import Settings, open_resources

    return open_resources(Settings(index=str(app_paths["index"]), world=str(app_paths["world"])))


@pytest.fixture(scope="module")
def clicked(res) -> LabelSet:
    """Two positives and a negative, as three map clicks in labelling mode add them."""
    from app.logic import labelsets as ls_logic

    ls = LabelSet("Set 1")
    ls = ls_logic.add_point(res, ls, "positive", 48.85, 2.35)
    ls = ls_logic.add_point(res, ls, "positive", 50.85, 4.35)
    return ls_logic.add_point(res, ls, "negative", 40.4, -3.7)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def with_set(labelset: LabelSet) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.session_state["labelsets"] = {labelset.name: labelset}
    at.session_state["labelset_active"] = labelset.name
    at.run()
    return at


def _set(at: AppTest) -> LabelSet:
    return at.session_state["labelsets"][at.session_state["labelset_active"]]


def test_start_page_has_the_tab_and_the_click_mode(app_env):
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    no_exception(at)
    assert "Label & find" in [t.label for t in at.tabs]
    assert at.sidebar.radio(key="label_click").value == "explore"
    assert any("Add a positive example" in i.value for i in at.info)
    assert not [d for d in at.get("download_button") if "Hits" in d.proto.label]


def test_hits_confirm_reject_remove_and_exports(app_env, clicked):
    at = with_set(clicked)
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Model"] == "logistic" and int(metrics["Hits"].replace(",", "")) >= 0
    # the map shows the set's scores (legend under the map) and the learning curve is drawn
    assert any("label set: probability" in m.value for m in at.markdown)
    assert any("Cross-validated" in str(c.proto.spec) for c in at.get("plotly_chart"))
    labels = [d.proto.label for d in at.get("download_button")]
    assert {"Hits GeoParquet", "Hits GeoJSON", "Label set GeoJSON"} <= set(labels)
    # lower the threshold so that there are hits to review
    slider = [s for s in at.slider if s.key and s.key.startswith("labelset_threshold")][0]
    slider.set_value(0.05).run()
    no_exception(at)
    confirm = [b for b in at.button if b.label == "Confirm"]
    assert confirm, "no hits to review"
    confirm[0].click().run()
    no_exception(at)
    ls = _set(at)
    assert len(ls) == 4 and ls.examples[-1].kind == "cell" and ls.examples[-1].label == "positive"
    [b for b in at.button if b.label == "Reject"][0].click().run()
    no_exception(at)
    ls = _set(at)
    assert len(ls) == 5 and ls.examples[-1].label == "negative"
    at.button(key="labelset_remove").click().run()  # removes the picked example (#1)
    no_exception(at)
    assert len(_set(at)) == 4 and _set(at).examples[0] == ls.examples[1]


def test_bad_upload_is_a_message_and_keeps_the_set(app_env, clicked):
    at = with_set(clicked)
    key = _set(at).key()
    at.file_uploader(key="labelset_file").upload(
        "broken.geojson", b"{not json", "application/geo+json"
    )
    at.run()
    no_exception(at)
    assert any("not valid JSON" in e.value for e in at.error)
    assert _set(at).key() == key and list(at.session_state["labelsets"]) == ["Set 1"]
    # a good file becomes a new, active set
    good = to_geojson_bytes(clicked.renamed("mine"))
    at.file_uploader(key="labelset_file").clear().upload("mine.geojson", good, "application/json")
    at.run()
    no_exception(at)
    assert at.session_state["labelset_active"] == "mine"
    assert list(at.session_state["labelsets"]) == ["Set 1", "mine"]
    assert _set(at) == clicked.renamed("mine")


def test_new_set_and_gallery_view(app_env):
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    at.text_input(key="labelset_new_name").input("Vineyards")
    at.button(key="labelset_create").click().run()
    no_exception(at)
    assert at.session_state["labelset_active"] == "Vineyards"
    at.button(key="ls_sv_pos").click().run()  # the first gallery view, as a positive
    no_exception(at)
    ls = _set(at)
    assert [(e.kind, e.label) for e in ls.examples] == [("streetview", "positive")]
    assert {m.label: m.value for m in at.metric}["Model"] == "similarity"
    saved = json.loads(to_geojson_bytes(ls))
    assert saved["features"][0]["properties"]["sv_id"] == ls.examples[0].sv_id
