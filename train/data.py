"""Training data: the datasets named by a config's `data:` section and the LightningDataModule.

Sources (`data.source`):
- `world`: the embedded demo world (`gair world build`), `gair.world.dataset.WorldTriples`;
- `prepared`: real triples written by `gair data prepare` (`gair.data`);
- `synthetic`: `train.synthetic.SyntheticTriples` (tests, benchmarks).

The samplers are ours (Lightning's automatic DistributedSampler is off): they shard across
ranks like `DistributedSampler`, can make an epoch a fresh random subset of the training
locations (`data.samples_per_epoch`, so validation comes often enough on a small budget), pass
the epoch on to the dataset (`set_epoch`, for train-split randomness), and the train loader is
resumable: its position inside the epoch is saved in the resume checkpoint, so a resumed run
continues with exactly the batches it had not seen yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger("train")

MODEL_KEYS = ("rs", "rs_bbox", "sv", "latlon")


# -- datasets ---------------------------------------------------------------------------------
def _world_datasets(data: dict, model_config: dict, seed: int):
    path = Path(data["path"])
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no world at {path}: run `gair world build --out {path}` (or `make world`)"
        )
    from gair.world import World
    from gair.world.dataset import WorldTriples

    world = World.open(path)
    train = WorldTriples(world, "train", model_config, seed=seed)
    val = WorldTriples(world, "val", model_config, seed=seed)
    fingerprint = getattr(world, "fingerprint", None) or _manifest_fingerprint(path)
    return train, val, fingerprint


def _prepared_datasets(data: dict, model_config: dict, seed: int):
    from gair.data.dataset import PreparedTriples

    path = Path(data["path"])
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no prepared data at {path}: run `gair data prepare --out {path} ...` first"
        )
    full = PreparedTriples(path, model_config)
    latlon = prepared_latlon(path)
    fingerprint = _manifest_fingerprint(path)
    if data["val_path"]:
        val_dir = Path(data["val_path"])
        if not (val_dir / "manifest.json").is_file():
            raise FileNotFoundError(f"no prepared validation data at {val_dir}")
        val = LocatedSubset(PreparedTriples(val_dir, model_config), None, prepared_latlon(val_dir))
        fingerprint += "+" + _manifest_fingerprint(val_dir)
        return LocatedSubset(full, None, latlon), val, fingerprint
    is_val = spatial_split(latlon, data["val_fraction"], data["val_block_deg"], seed)
    if is_val.all() or not is_val.any():
        raise ValueError(
            f"the spatial split of {len(latlon)} prepared samples into blocks of "
            f"{data['val_block_deg']} degrees leaves an empty train or val side: set "
            "data.val_block_deg / data.val_fraction, or data.val_path"
        )
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    return (
        LocatedSubset(full, train_idx, latlon[train_idx]),
        LocatedSubset(full, val_idx, latlon[val_idx]),
        fingerprint,
    )


def prepared_latlon(path: Path) -> np.ndarray:
    """All (lat, lon) [N, 2] of a `gair data prepare` output, read from its shards' `latlon`
    tensors (no images are decoded)."""
    from safetensors import safe_open

    manifest = json.loads((path / "manifest.json").read_text())
    parts = []
    for shard in manifest["shards"]:
        with safe_open(str(path / shard["file"]), framework="np") as fh:
            parts.append(np.asarray(fh.get_tensor("latlon"), dtype=np.float64))
    return np.concatenate(parts) if parts else np.zeros((0, 2))


def spatial_split(latlon: np.ndarray, val_fraction: float, block_deg: float, seed: int):
    """Boolean mask of validation samples: whole lat/lon blocks of `block_deg` degrees go to
    validation, chosen by a seeded hash of the block until `val_fraction` of the samples."""
    rows = np.floor((np.asarray(latlon)[:, 0] + 90.0) / block_deg).astype(np.int64)
    cols = np.floor((np.asarray(latlon)[:, 1] + 180.0) / block_deg).astype(np.int64)
    blocks, inverse, counts = np.unique(
        np.stack([rows, cols], 1), axis=0, return_inverse=True, return_counts=True
    )
    keys = [hashlib.blake2b(f"{seed}:{r}:{c}".encode(), digest_size=8).digest() for r, c in blocks]
    is_val_block = np.zeros(len(blocks), bool)
    taken, target = 0, val_fraction * len(latlon)
    for b in sorted(range(len(blocks)), key=lambda i: keys[i]):
        if taken >= target:
            break
        is_val_block[b], taken = True, taken + counts[b]
    return is_val_block[inverse.reshape(-1)]


class LocatedSubset(Dataset):
    """A subset (`indices`, or all when None) of a dataset, with the `latlon` [N, 2] of its
    samples as an attribute (for the baseline and the location gallery)."""

    def __init__(self, dataset: Dataset, indices: np.ndarray | None, latlon: np.ndarray):
        self.dataset, self.indices, self.latlon = dataset, indices, np.asarray(latlon)

    def __len__(self) -> int:
        return len(self.latlon)

    def _pick(self, positions) -> list[int]:
        positions = [int(i) for i in positions]
        return positions if self.indices is None else [int(self.indices[i]) for i in positions]

    def __getitems__(self, positions) -> list[dict]:
        picked = self._pick(positions)
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(picked)
        return [self.dataset[i] for i in picked]

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]


class IndexedSubset(LocatedSubset):
    """A fixed subset whose samples also carry their position `index` in the subset (used to
    drop the padding duplicates of distributed validation)."""

    def __getitems__(self, positions) -> list[dict]:
        samples = super().__getitems__(positions)
        return [
            {**s, "index": torch.tensor(int(i), dtype=torch.long)}
            for s, i in zip(samples, positions)
        ]


def _manifest_fingerprint(path: Path) -> str:
    """The manifest's own `fingerprint`, else the SHA-256 of the manifest file."""
    raw = (path / "manifest.json").read_bytes()
    try:
        value = json.loads(raw).get("fingerprint")
    except (json.JSONDecodeError, AttributeError):
        value = None
    return str(value) if value else hashlib.sha256(raw).hexdigest()


def _synthetic_datasets(data: dict, model_config: dict, seed: int):
    from train.synthetic import SyntheticTriples

    train = SyntheticTriples("train", model_config, data["synthetic_train"], seed=seed)
    val = SyntheticTriples("val", model_config, data["synthetic_val"], seed=seed)
    return train, val, f"synthetic:{train.fingerprint}:{val.fingerprint}"


SOURCES = {
    "world": _world_datasets,
    "prepared": _prepared_datasets,
    "synthetic": _synthetic_datasets,
}


def _km_per_deg() -> float:
    from gair import geo

    return math.pi * geo.EARTH_RADIUS_KM / 180.0


def rs_chip_of(cfg: dict) -> dict | None:
    """The ground size of the RS chips a config's data feeds the model (config.json's
    `rs_chip`, see `gair.run_dir`): the demo world's and the synthetic chips are squares of
    latitude/longitude degrees, prepared chips are `chip_km` squares on the ground. None when
    the data does not say (a prepared manifest without chip_km)."""
    from gair.run_dir import rs_chip_entry

    data, px = cfg["data"], int(cfg["model_config"]["rs"]["img_size"])
    if data["source"] == "world":
        deg_per_px = float(_read_manifest(Path(data["path"]))["grid"]["deg_per_px"])
        deg = px * deg_per_px
        return rs_chip_entry(
            deg * _km_per_deg(),
            px,
            "degree-square",
            f"the demo world's chips: {px} px of {deg_per_px:.6g} degree",
            deg=deg,
        )
    if data["source"] == "synthetic":
        from train.synthetic import CHIP_HALF_DEG

        deg = 2 * CHIP_HALF_DEG
        return rs_chip_entry(
            deg * _km_per_deg(), px, "degree-square", "the synthetic chips", deg=deg
        )
    params = _read_manifest(Path(data["path"])).get("params") or {}
    if not params.get("chip_km"):
        return None
    source_px = params.get("chip_px")
    return rs_chip_entry(
        float(params["chip_km"]),
        px,
        "ground-square",
        f"gair data prepare --chip-km {params['chip_km']:g} ({data['path']})",
        source_px=source_px,
        source_gsd_m=round(float(params["chip_km"]) * 1000.0 / source_px, 6) if source_px else None,
    )


def _read_manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def open_datasets(cfg: dict) -> tuple[Dataset, Dataset, str]:
    """(train dataset, full validation dataset, data fingerprint) for a training config."""
    data = cfg["data"]
    return SOURCES[data["source"]](data, cfg["model_config"], cfg["seed"])


def dataset_latlon(dataset: Dataset) -> np.ndarray:
    """The (lat, lon) [N, 2] of a dataset's locations: its `latlon` attribute when it has one
    (all of ours do), else read sample by sample (slow)."""
    value = getattr(dataset, "latlon", None)
    if value is not None:
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == 2:
            return arr
    log.warning("dataset has no latlon attribute: reading its %d samples", len(dataset))
    return np.stack(
        [np.asarray(dataset[i]["latlon"], dtype=np.float64) for i in range(len(dataset))]
    )


def evenly_spaced(total: int, n: int) -> np.ndarray:
    """`n` distinct indices spread evenly over range(total) (all of them when n >= total)."""
    if n >= total:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))


def collate(samples: list[dict]) -> dict:
    """Stack the keys the model uses (labels are left out of training batches)."""
    keys = [k for k in (*MODEL_KEYS, "index") if k in samples[0]]
    missing = [k for k in MODEL_KEYS if k not in samples[0]]
    if missing:
        raise ValueError(f"samples lack keys {missing}; a GAIR sample has {list(MODEL_KEYS)}")
    return {k: torch.stack([torch.as_tensor(s[k]) for s in samples]) for k in keys}


# -- samplers and loaders ----------------------------------------------------------------------
class EpochSampler(Sampler):
    """Shards an epoch's indices across ranks (like DistributedSampler), hands the epoch to the
    dataset, and can start mid-epoch (resume).

    shuffle=True (training): epoch e is a permutation seeded by (seed + e), cut to
    `per_epoch` samples when given, and to a multiple of the number of ranks.
    shuffle=False (validation): every index in order, padded by repeating the first ones.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_replicas: int,
        rank: int,
        shuffle: bool,
        seed: int,
        per_epoch: int | None = None,
    ):
        self.dataset, self.n = dataset, len(dataset)
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        total = min(per_epoch or self.n, self.n)
        if shuffle:
            self.num_samples = total // num_replicas
        else:
            self.num_samples = math.ceil(total / num_replicas)
        self.start = 0  # samples of this rank's epoch to skip (resume), for the next pass only

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=gen)[: self.num_samples * self.num_replicas]
        else:
            order = torch.arange(self.num_samples * self.num_replicas) % self.n
        mine = order[self.rank :: self.num_replicas].tolist()
        start, self.start = self.start, 0
        return iter(mine[start:])


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is part of Lightning's checkpoint.

    Lightning saves `state_dict()` of stateful train loaders and restores it before creating the
    iterator of a resumed run; the sampler then skips the batches already trained on.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._served = 0  # batches handed out in the current epoch
        self._resume_at = 0  # set by load_state_dict: batches to skip in the next pass

    def __iter__(self):
        # a generator: workers start at the first next(), after Lightning's set_epoch
        self._served, self._resume_at = self._resume_at, 0
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._served)}

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("epoch", -1)) == int(self.sampler.epoch):
            self._resume_at = int(state["batches"])
            self.sampler.start = self._resume_at * int(self.batch_size)


class GAIRDataModule(L.LightningDataModule):
    """Train loader over the train split; validation over a fixed subset of the val split.

    Args:
        cfg: validated training config.
        datasets: optional (train, val, fingerprint) to use instead of `cfg["data"]` (tests).
    """

    def __init__(self, cfg: dict, datasets: tuple[Dataset, Dataset, str] | None = None):
        super().__init__()
        self.cfg = cfg
        self.train_set, val_full, self.fingerprint = datasets or open_datasets(cfg)
        # the chips' ground size, recorded in config.json (given datasets may carry their own)
        self.rs_chip = getattr(self.train_set, "rs_chip", None) if datasets else rs_chip_of(cfg)
        picked = evenly_spaced(len(val_full), cfg["data"]["val_samples"])
        val_latlon = dataset_latlon(val_full)
        self.val_set = IndexedSubset(val_full, picked, val_latlon[picked % len(val_latlon)])
        self.batches_per_epoch(1)  # fails early on a training set smaller than one batch

    def _train_sampler(self, world: int, rank: int) -> EpochSampler:
        return EpochSampler(
            self.train_set,
            num_replicas=world,
            rank=rank,
            shuffle=True,
            seed=self.cfg["seed"],
            per_epoch=self.cfg["data"]["samples_per_epoch"],
        )

    def batches_per_epoch(self, world_size: int) -> int:
        """Train batches per epoch and rank (for the LR schedule, without Lightning's loaders)."""
        per_rank, batch = (
            len(self._train_sampler(world_size, 0)),
            self.cfg["optimizer"]["batch_size"],
        )
        if per_rank < batch:
            raise ValueError(
                f"an epoch gives each of {world_size} rank(s) {per_rank} training samples, fewer "
                f"than one batch of {batch} (training set: {len(self.train_set)} samples)"
            )
        return per_rank // batch

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def _loader_kwargs(self) -> dict:
        workers = self.cfg["data"]["num_workers"]
        return dict(
            batch_size=self.cfg["optimizer"]["batch_size"],
            num_workers=workers,
            collate_fn=collate,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,  # workers are forked per epoch and see set_epoch()
        )

    def train_dataloader(self) -> DataLoader:
        world, rank = self._rank()
        sampler = self._train_sampler(world, rank)
        trainer = getattr(self, "trainer", None)
        sampler.set_epoch(trainer.current_epoch if trainer is not None else 0)
        return ResumableLoader(
            self.train_set, sampler=sampler, drop_last=True, **self._loader_kwargs()
        )

    def val_dataloader(self) -> DataLoader:
        world, rank = self._rank()
        sampler = EpochSampler(self.val_set, num_replicas=world, rank=rank, shuffle=False, seed=0)
        return DataLoader(self.val_set, sampler=sampler, drop_last=False, **self._loader_kwargs())

    def location_sets(self, gallery_train: int) -> tuple[np.ndarray, np.ndarray]:
        """(all training locations, `gallery_train` of them spread evenly: the training
        locations added to the validation location gallery)."""
        train_ll = dataset_latlon(self.train_set)
        return train_ll, train_ll[evenly_spaced(len(train_ll), gallery_train)]


def steps_per_epoch(batches: int, accumulate: int) -> int:
    """Optimizer steps in an epoch of `batches` (Lightning steps on the last partial group)."""
    return max(1, math.ceil(batches / accumulate))
