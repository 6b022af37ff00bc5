"""Shared fixtures.

`world_dir` (session): the demo world every test uses. Set GAIR_TEST_WORLD to a built world
(`gair world build --out DIR`) to reuse it; otherwise the world is built once per session into a
temp dir (~30-60 s on 2 cores). `world`: `World.open(world_dir)`.
`official_examples_dir`: ../shared/fixtures/official-examples (the test skips when absent).
`tiny_run` (session): a random-init `tiny` checkpoint; `small_index` (session): (index dir,
manifest) of a small index over France built with it (`small_index_spec`). Tests that damage an
index copy it first.
`app_paths` (session): {"run", "index", "world"} of the app tests' small index with heads
(`tests.e2e.support.build_app_index`); `app_env` points the app's env variables at it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_EXAMPLES = REPO.parent / "shared" / "fixtures" / "official-examples"


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory) -> Path:
    from gair.world.build import build_world, check_complete

    env = os.environ.get("GAIR_TEST_WORLD")
    if env:
        manifest, why = check_complete(env)
        if manifest is not None:
            return Path(env)
        print(f"GAIR_TEST_WORLD={env} is not usable ({why}); building a world for this session")
    out = tmp_path_factory.mktemp("world") / "world"
    build_world(out, progress=False)
    return out


@pytest.fixture(scope="session")
def world(world_dir):
    from gair.world import World

    return World.open(world_dir)


@pytest.fixture(scope="session")
def official_examples_dir() -> Path:
    if not (OFFICIAL_EXAMPLES / "examples.csv").is_file():
        pytest.skip(f"official examples not available at {OFFICIAL_EXAMPLES}")
    return OFFICIAL_EXAMPLES


EUROPE = (0.0, 44.0, 6.0, 49.0)  # W, S, E, N: France, land and a little sea


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    import torch

    from gair import build_model, save_model

    torch.manual_seed(0)
    return save_model(build_model("tiny"), tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="session")
def small_index_spec(tiny_run, world_dir):
    from index.build import BuildSpec

    return BuildSpec(
        checkpoint=str(tiny_run),
        world=str(world_dir),
        grid="h3:4",
        bbox=EUROPE,
        gallery_size=300,
        shard_size=64,
    )


@pytest.fixture(scope="session")
def small_index(small_index_spec, world, tmp_path_factory):
    from index.build import build_index

    out = tmp_path_factory.mktemp("idx") / "index"
    manifest = build_index(small_index_spec, out, world=world, progress=False)
    return out, manifest


@pytest.fixture(scope="session")
def app_paths(world_dir, tmp_path_factory):
    from tests.e2e.support import build_app_index

    root = tmp_path_factory.getbasetemp() / "app-index"
    root.mkdir(exist_ok=True)
    run, index_dir = build_app_index(world_dir, root)
    return {"run": run, "index": index_dir, "world": Path(world_dir)}


@pytest.fixture
def app_env(app_paths, monkeypatch):
    monkeypatch.setenv("GAIR_INDEX", str(app_paths["index"]))
    monkeypatch.setenv("GAIR_WORLD", str(app_paths["world"]))
    monkeypatch.delenv("GAIR_CHECKPOINT", raising=False)
    return app_paths


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Caches (e.g. `gair eval` features) go to a per-session directory, never the user's."""
    old = os.environ.get("GAIR_CACHE")
    os.environ["GAIR_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("GAIR_CACHE", None)
    else:
        os.environ["GAIR_CACHE"] = old
