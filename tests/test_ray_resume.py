"""Issue 17: kill -9 a Ray build mid-way, run the same command again: it resumes from the
shards already written and its vectors equal the local engine's uninterrupted build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import EUROPE

pytestmark = pytest.mark.slow


def _command(spec, out: Path) -> list[str]:
    gair = str(Path(sys.executable).with_name("gair"))
    return [
        gair, "index", "build", "--checkpoint", spec.checkpoint, "--world", spec.world,
        "--grid", spec.grid, "--bbox", ",".join(str(v) for v in EUROPE),
        "--gallery-size", str(spec.gallery_size), "--shard-size", str(spec.shard_size),
        "--engine", "ray", "--workers", "2", "--out", str(out),
    ]  # fmt: skip


def test_kill_9_during_a_ray_build_then_resume_equals_uninterrupted(
    small_index, small_index_spec, tmp_path
):
    pytest.importorskip("ray")
    out = tmp_path / "index"
    work = out.with_name(f".{out.name}.building")
    env = dict(os.environ, RAY_ADDRESS="", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS")
    log = tmp_path / "first.log"
    with open(log, "w") as fh:  # its own session: the kill reaches Ray's workers too
        proc = subprocess.Popen(
            _command(small_index_spec, out), stdout=fh, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.time() + 300
        while len(list(work.glob("shard_*.npz"))) < 2:
            assert proc.poll() is None, f"the build ended before the kill:\n{log.read_text()}"
            assert time.time() < deadline, f"no shards after 300 s:\n{log.read_text()[-2000:]}"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = len(list(work.glob("shard_*.npz")))
    assert not out.exists() and done_before >= 2

    again = subprocess.run(
        _command(small_index_spec, out), capture_output=True, text=True, env=env, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming:" in again.stderr and "shards already done" in again.stderr
    local, _ = small_index  # the same spec, local engine, never interrupted
    np.testing.assert_allclose(np.load(out / "cells.npy"), np.load(local / "cells.npy"), atol=2e-6)
    assert not work.exists()


def test_ray_actors_get_absolute_paths(tmp_path, monkeypatch):
    """A cluster's actors (`ray start`) do not run in the driver's directory: local paths go to
    them absolute; what does not exist locally (a URL, a typo) is passed on unchanged."""
    from index.build import BuildSpec
    from index.ray_engine import absolute_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "world").mkdir()
    (tmp_path / "run").mkdir()
    spec = BuildSpec(checkpoint="run", world="world", source=["world", "nowhere.tif"])
    out = absolute_paths(spec)
    assert out.checkpoint == str(tmp_path / "run") and out.world == str(tmp_path / "world")
    assert out.source == [str(tmp_path / "world"), "nowhere.tif"]
    assert out.gallery_csv is None and out.grid == spec.grid
