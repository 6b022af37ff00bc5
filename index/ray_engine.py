"""`--engine ray`: the same shard embedding as the local engine, run on Ray Data actors (one
Embedder per actor). Shards are written by the same function into the same work dir, so the
output is the local engine's; a cluster is used when RAY_ADDRESS is set, else a local Ray."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np


class _ShardWorker:
    def __init__(self, spec, work: str):
        import torch

        from gair.embed import Embedder

        torch.set_num_threads(1)
        self.embedder = Embedder(spec.checkpoint, spec.open_source())
        self.work = work

    def __call__(self, batch: dict) -> dict:
        from pathlib import Path

        from index.build import _save_shard, _shard_path, embed_shard

        for shard, latlon in zip(batch["shard"], batch["latlon"]):
            arrays = embed_shard(self.embedder, np.asarray(latlon, dtype=np.float64).reshape(-1, 2))
            _save_shard(_shard_path(Path(self.work), int(shard)), arrays)
        return {"shard": batch["shard"]}


def absolute_paths(spec):
    """The spec with its local paths absolute: a cluster's actors (`ray start`) do not run in
    the driver's working directory, so `data/world` would name nothing there."""

    def local(path):
        return str(Path(path).resolve()) if path and Path(path).exists() else path

    return replace(
        spec,
        checkpoint=local(spec.checkpoint),
        world=local(spec.world),
        source=[local(p) for p in spec.source] if spec.source else spec.source,
        gallery_csv=local(spec.gallery_csv),
    )


def run_ray(spec, latlon: np.ndarray, work) -> None:
    import ray

    from index.build import pending_shards

    todo = pending_shards(work, len(latlon), spec.shard_size)
    if not todo:
        return
    spec, work = absolute_paths(spec), Path(work).resolve()  # actors run in other dirs
    started_here = not ray.is_initialized()
    if started_here:
        address = os.environ.get("RAY_ADDRESS")
        kwargs = {} if address else {"num_cpus": spec.workers, "include_dashboard": False}
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, **kwargs)
        except ConnectionError as err:
            raise ValueError(
                f"RAY_ADDRESS={address!r}: no Ray cluster answers there ({str(err)[:120]}); "
                "start one with `ray start --head`, or unset RAY_ADDRESS for a local Ray"
            ) from err
    try:
        items = [
            {"shard": i, "latlon": latlon[i * spec.shard_size : (i + 1) * spec.shard_size]}
            for i in todo
        ]
        ds = ray.data.from_items(items).map_batches(
            _ShardWorker,
            fn_constructor_kwargs={"spec": spec, "work": str(work)},
            batch_size=1,
            concurrency=spec.workers,
            num_cpus=1,
        )
        done = sorted(int(s) for s in ds.to_pandas()["shard"])
        missing = sorted(set(todo) - set(done))
        if missing:
            raise RuntimeError(f"Ray engine did not produce shards {missing}")
    finally:
        if started_here:
            ray.shutdown()
