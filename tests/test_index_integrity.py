"""Index integrity: a damaged, mixed-up or foreign index file is refused with a message naming
the file and the rebuild command; a resumed build re-embeds a damaged shard; the manifest's
paths work from any working directory; the CLI keeps its exit-2 contract."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from gair.cli import main as gair_main
from gair.embed import Embedder
from index import build as build_mod
from index.build import build_index
from index.integrity import IndexDamagedError
from index.search import GridIndex, read_manifest


@pytest.fixture
def index_copy(small_index, tmp_path):
    """A private copy of the small index (tests damage it)."""
    src, _ = small_index
    dst = tmp_path / "index"
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def embedder(small_index_spec, world):
    return Embedder(small_index_spec.checkpoint, world)


def _open(path, embedder):
    return GridIndex(path, embedder)


def _gair(capsys, *args):
    code = gair_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_intact_index_opens_and_verifies(index_copy, embedder, capsys):
    index = _open(index_copy, embedder)
    index.verify()
    code, out, err = _gair(capsys, "index", "verify", "--index", index_copy, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] and result["cells"] == len(index.cells) and result["files"] == 7


def test_shuffled_parquet_rows_are_refused(index_copy, embedder):
    cells = pd.read_parquet(index_copy / "cells.parquet")
    shuffled = cells.sample(frac=1.0, random_state=0).reset_index(drop=True)
    shuffled.to_parquet(index_copy / "cells.parquet", index=False)
    _accept_size(index_copy, "cells.parquet")
    with pytest.raises(IndexDamagedError, match="cells.parquet.*not in the order") as err:
        _open(index_copy, embedder)
    assert "gair index build" in str(err.value)


def test_dropped_parquet_row_is_refused(index_copy, embedder):
    cells = pd.read_parquet(index_copy / "cells.parquet")
    cells.iloc[1:].to_parquet(index_copy / "cells.parquet", index=False)
    _accept_size(index_copy, "cells.parquet")
    with pytest.raises(IndexDamagedError, match=r"cells.parquet has [\d,]+ rows"):
        _open(index_copy, embedder)


def test_changed_size_is_refused_before_reading(index_copy, embedder):
    with open(index_copy / "cells.npy", "ab") as fh:
        fh.write(b"\0" * 16)
    with pytest.raises(IndexDamagedError, match="cells.npy is .* bytes, the build wrote"):
        _open(index_copy, embedder)


def test_faiss_file_of_another_build_is_refused(index_copy, embedder, small_index_spec, world):
    # same grid, same size, other vectors: a rebuild with the cells in another order
    import faiss

    vecs = np.load(index_copy / "cells.npy")
    other = faiss.IndexFlatIP(vecs.shape[1])
    other.add(np.ascontiguousarray(vecs[::-1]))
    faiss.write_index(other, str(index_copy / "cells.faiss"))
    with pytest.raises(IndexDamagedError, match="cells.faiss does not hold the vectors"):
        _open(index_copy, embedder)


def test_flipped_byte_is_caught_by_verify(index_copy, embedder, capsys):
    path = index_copy / "streetviews.npy"
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # the last float16's lowest bit (one ulp): opening cannot see it
    path.write_bytes(bytes(data))
    index = _open(index_copy, embedder)
    with pytest.raises(IndexDamagedError, match="streetviews.npy does not match its SHA-256"):
        index.verify()
    code, _, err = _gair(capsys, "index", "verify", "--index", index_copy)
    assert code == 2 and "streetviews.npy" in err and "gair index build" in err


@pytest.mark.parametrize(
    "manifest, match",
    [
        ([1, 2, 3], "holds a list"),
        ({"format_version": 3}, "lacks 'checkpoint_hash'"),
        ({"format_version": "2"}, "format_version '2' is not an integer"),
        ({"format_version": 2}, "rebuild it"),
    ],
)
def test_bad_manifests_are_exit_2(index_copy, capsys, manifest, match):
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=match):
        read_manifest(index_copy)
    code, _, err = _gair(capsys, "index", "query", "--index", index_copy, "--cell", "x")
    assert code == 2 and "manifest.json" in err


def test_manifest_missing_a_file_record_is_refused(index_copy):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    del manifest["files"]["cells.faiss"]
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="files.cells.faiss"):
        read_manifest(index_copy)


def test_truncated_faiss_file_is_exit_2(index_copy, capsys):
    path = index_copy / "cells.faiss"
    path.write_bytes(path.read_bytes()[:100])
    code, _, err = _gair(capsys, "index", "query", "--index", index_copy, "--lat", 46, "--lon", 2)
    assert code == 2 and "cells.faiss" in err


def test_query_from_another_directory(
    index_copy, small_index_spec, world_dir, capsys, tmp_path, monkeypatch
):
    # the manifest's paths are relative to the index: they resolve from any working directory
    world_abs = world_dir.resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    manifest = read_manifest(index_copy)
    assert not manifest["checkpoint"].startswith("/")
    code, out, err = _gair(
        capsys,
        "index",
        "query",
        "--index",
        index_copy,
        "--lat",
        46.5,
        "--lon",
        2.5,
        "--k",
        2,
        "--json",
    )
    assert code == 0, err
    assert len(json.loads(out)["cells"]) == 2
    # --checkpoint and --world override the manifest's
    code, _, err = _gair(
        capsys,
        "index", "query", "--index", index_copy, "--cell", manifest_cell(index_copy),
        "--checkpoint", small_index_spec.checkpoint, "--world", world_abs, "--k", 1,
    )  # fmt: skip
    assert code == 0, err


def test_index_copied_alone_finds_its_checkpoint(small_index, tmp_path, capsys):
    # the relative paths no longer lead anywhere: the absolute ones recorded beside them do
    src, _ = small_index
    far = tmp_path / "a" / "b" / "c" / "index"
    shutil.copytree(src, far)
    code, out, err = _gair(
        capsys, "index", "query", "--index", far, "--cell", manifest_cell(far), "--k", 1
    )
    assert code == 0, err


def manifest_cell(index_dir) -> str:
    return str(pd.read_parquet(index_dir / "cells.parquet")["cell_id"].iloc[0])


@pytest.mark.parametrize(
    "args, match",
    [
        (["--lat", "10", "--lon", "1e308"], "longitude"),
        (["--lat", "10", "--lon", "nan"], "longitude"),
        (["--lat", "10", "--lon", "0", "--k", "1000000000"], "--k must be from 1 to 1000"),
        (["--lat", "10", "--lon", "0", "--k", "0"], "--k must be from 1 to 1000"),
        (["--cell", "x", "--lon", "10"], "--lon needs --lat"),
    ],
)
def test_query_bad_input_is_exit_2(small_index, capsys, args, match):
    out, _ = small_index
    code, _, err = _gair(capsys, "index", "query", "--index", out, *args)
    assert code == 2 and match in err


def test_k_is_capped_at_the_index_size(small_index, embedder):
    out, _ = small_index
    index = _open(out, embedder)
    hits = index.search_streetviews(index.sv_vectors[0], k=1000)
    assert len(hits) == len(index.streetviews) <= 1000
    for bad in (0, -1, 1001, 2.5, True):
        with pytest.raises(ValueError, match="k must be an integer"):
            index.search_cells(index.cell_vectors[0], k=bad)
    with pytest.raises(ValueError, match="shape"):
        index.search_cells(np.zeros(3, np.float32), k=3)


def test_resumed_build_re_embeds_a_truncated_shard(
    small_index, small_index_spec, world, tmp_path, monkeypatch
):
    out = tmp_path / "index"
    calls = []
    real = build_mod.embed_shard

    def crashing(embedder, latlon, on_chips=None):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(embedder, latlon, on_chips)

    monkeypatch.setattr(build_mod, "embed_shard", crashing)
    with pytest.raises(KeyboardInterrupt):
        build_index(small_index_spec, out, world=world, progress=False)
    work = out.with_name(".index.building")
    shards = sorted(work.glob("shard_*.npz"))
    assert len(shards) == 2
    shards[0].write_bytes(shards[0].read_bytes()[:200])  # truncated on disk after the fact
    recomputed = []
    monkeypatch.setattr(
        build_mod, "embed_shard", lambda e, ll, cb=None: recomputed.append(1) or real(e, ll, cb)
    )
    manifest = build_index(small_index_spec, out, world=world, progress=False)
    n_shards = -(-manifest["cells"]["count"] // small_index_spec.shard_size)
    assert len(recomputed) == n_shards - 1  # the bad shard and the never-written ones
    reference, _ = small_index  # the same spec built without interruption
    np.testing.assert_array_equal(np.load(out / "cells.npy"), np.load(reference / "cells.npy"))


def _accept_size(index_dir, name):
    """Record a rewritten file's new size in the manifest, as if the size had happened to match:
    only the content checks can catch it then."""
    manifest = json.loads((index_dir / "manifest.json").read_text())
    manifest["files"][name]["bytes"] = (index_dir / name).stat().st_size
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
