"""The README's evaluation tables are generated from the shipped eval.json files and stay so."""

from __future__ import annotations

import pytest

from gair.evaluation import readme


def test_readme_tables_match_the_shipped_eval_json(capsys):
    if not (readme.ROOT / "checkpoints" / "demo" / "eval.json").is_file():
        pytest.skip("no shipped eval.json")
    code = readme.main(["--check"])
    assert code == 0, capsys.readouterr().err


def test_block_markers_are_required_and_replaced():
    text = f"intro\n{readme.BEGIN}\nold numbers\n{readme.END}\noutro\n"
    assert (
        readme.replaced(text, "new\n") == f"intro\n{readme.BEGIN}\n\nnew\n\n{readme.END}\noutro\n"
    )
    with pytest.raises(ValueError, match="needs one"):
        readme.replaced("no markers here", "new")
    with pytest.raises(ValueError, match="needs one"):
        readme.replaced(f"{readme.END}\n{readme.BEGIN}\n", "new")
