"""`--engine ray`: the same shard embedding as the local engine, run on Ray Data actors (one
Embedder per actor). Shards are written by the same function into the same work dir, so the
output is the local engine's; a cluster is used when RAY_ADDRESS is set, else a local Ray."""

from __future__ import annotations

import os

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


def run_ray(spec, latlon: np.ndarray, work) -> None:
    import ray

    from index.build import pending_shards

    todo = pending_shards(work, len(latlon), spec.shard_size)
    if not todo:
        return
    started_here = not ray.is_initialized()
    if started_here:
        address = os.environ.get("RAY_ADDRESS")
        kwargs = {} if address else {"num_cpus": spec.workers, "include_dashboard": False}
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, **kwargs)
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
