"""The one place that defines "the embedding of X": raw inputs in, L2-normalised float32 out.

The INR embedding of a point comes from a canonical tiling of the RS raster: square chips of
`chip_px` pixels centred on a lattice with spacing `stride_px` (the largest divisor of the
raster width not above chip_px / 2, so the lattice closes around the globe). A point lies in the
2x2 tiles whose centres surround it; each tile's NILI query at the point is blended with tent
weights (1 - |du|)(1 - |dv|) (du, dv = offset from the tile centre in strides), which fall to
zero before the tile's edge. The weights sum to one and vary continuously, so the embedding is
continuous across tile borders, and every point inside a tile reuses that tile's single RS
encoder pass: the cost scales with tiles, not points.

The index build, `gair index query`, evaluation and the app all call this class, so a point
queried alone gets the embedding the index stored for it (up to float round-off of batching).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gair import geo
from gair.checkpoint import checkpoint_hash, load_model, read_run_config
from gair.images import square_resize
from gair.preprocess import preprocess_rs, preprocess_sv


@dataclass(frozen=True)
class Tiling:
    """The canonical tiling of a global plate-carree raster (row 0 at 90N, col 0 at 180W)."""

    width_px: int  # raster width (360 degrees)
    chip_px: int
    stride_px: int

    @classmethod
    def for_raster(cls, width_px: int, chip_px: int) -> Tiling:
        _positive_int(width_px, "Tiling: width_px")
        if _positive_int(chip_px, "Tiling: chip_px") < 2:
            raise ValueError(f"Tiling: chip_px must be at least 2, got {chip_px!r}")
        limit = chip_px // 2
        stride = max(d for d in range(1, limit + 1) if width_px % d == 0)
        return cls(width_px, chip_px, stride)

    @property
    def stride_deg(self) -> float:
        return 360.0 * self.stride_px / self.width_px

    @property
    def n_cols(self) -> int:
        return self.width_px // self.stride_px

    def as_dict(self) -> dict:
        return {"width_px": self.width_px, "chip_px": self.chip_px, "stride_px": self.stride_px}

    def tiles_of(self, latlon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For points [N, 2] (validated): tile rows [N, 4], tile cols [N, 4], weights [N, 4]."""
        u = (90.0 - latlon[:, 0]) / self.stride_deg  # continuous tile row
        v = ((latlon[:, 1] + 180.0) % 360.0) / self.stride_deg  # continuous tile column
        r0, c0 = np.floor(u), np.floor(v)
        fu, fv = u - r0, v - c0
        rows = np.stack([r0, r0, r0 + 1, r0 + 1], -1).astype(np.int64)
        cols = (np.stack([c0, c0 + 1, c0, c0 + 1], -1).astype(np.int64)) % self.n_cols
        weights = np.stack([(1 - fu) * (1 - fv), (1 - fu) * fv, fu * (1 - fv), fu * fv], -1)
        return rows, cols, weights

    def centre(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Tile centres (lat, lon) [..., 2]; latitudes beyond the poles are clamped."""
        lat = np.clip(90.0 - rows * self.stride_deg, -90.0, 90.0)
        lon = geo.wrap_lon(-180.0 + cols * self.stride_deg)
        return np.stack([lat, lon], -1)


class Embedder:
    """Model + preprocessing of a run dir, applied to raw inputs.

    Args:
        run_dir: a run directory (model.safetensors + config.json).
        world: an RS source with `chips(latlon [N, 2], size_px) -> (rs [N, C, S, S], bbox [N, 4])`
            and `width_px` (raster width in pixels for 360 degrees; default: the demo world's);
            needed only for `point`.
        device: torch device; default CUDA when available.
        tile_batch: tiles per RS encoder batch (a positive integer).

    Every method validates its input before it computes and raises a one-line ValueError that
    names the method, the bad value and what is expected. Points are one (lat, lon) pair [2] or
    pairs [N, 2] (lat first; a [2, N] array of a lat row and a lon row is refused, not
    reshaped); latitudes in [-90, 90], longitudes in [-540, 540] (wrapped). Empty input (N = 0:
    [0, 2], [] or no images) gives an empty [0, E] float32 array.
    """

    def __init__(
        self, run_dir: str | Path, world=None, device: str | None = None, tile_batch: int = 64
    ):
        _positive_int(tile_batch, "Embedder: tile_batch")
        tiled = getattr(world, "tiled", True)
        needed = ("chips",) if tiled else ("locate", "read")
        if world is not None and not all(callable(getattr(world, m, None)) for m in needed):
            raise ValueError(
                f"Embedder: world must be an RS source (gair.sources) with "
                f"{' and '.join(needed)} methods, got {type(world).__name__}"
            )
        self.run_dir = Path(run_dir)
        self.device = resolve_device(device)
        self.model = load_model(self.run_dir, map_location=self.device)
        self.config = self.model.config
        self.run_config = read_run_config(self.run_dir)
        self.checkpoint_hash = checkpoint_hash(self.run_dir)
        self.world = world
        self.tile_batch = tile_batch
        self.tiling = None
        if world is not None and tiled:
            width_px = getattr(world, "width_px", None) or _demo_world_width()
            self.tiling = Tiling.for_raster(int(width_px), self.config["rs"]["img_size"])
        self.encoder_passes = 0  # RS encoder forward passes (tiles) so far

    @property
    def dim(self) -> int:
        return int(self.config["embed_dim"])

    @property
    def logit_scale(self) -> float:
        """1 / tau of the model's contrastive training (reads scores as a posterior)."""
        return self.model.logit_scale()

    # -- INR point embeddings -------------------------------------------------------------
    def point(self, latlon) -> np.ndarray:
        """INR embeddings of points [N, 2] (or one point [2]) (lat, lon) -> [N, E] float32,
        L2-normalised; N = 0 gives [0, E]. ValueError for any other shape (a [2, N] array is
        refused), a bad coordinate, or an Embedder without a world; `NotCoveredError` (a
        ValueError) when the RS source has no imagery under a point."""
        emb, covered = self.point_coverage(latlon)
        if not covered.all():
            from gair.sources import NotCoveredError

            bad = _as_points(latlon, "Embedder.point")[~covered]
            raise NotCoveredError(
                f"no imagery of the RS source under {len(bad)} of {len(covered)} point(s), "
                f"e.g. (lat, lon) {bad[0].round(6).tolist()}: outside the rasters, in a gap, or "
                "on a chip with too little data",
                bad,
            )
        return emb

    def point_coverage(self, latlon, on_chips=None) -> tuple[np.ndarray, np.ndarray]:
        """INR embeddings of points [N, 2] with their coverage: (emb [N, E] float32, NaN rows
        where not covered; covered bool [N]). Only chips that hold data at the point and on at
        least the source's min_coverage share of their pixels answer it (every chip, for the
        demo world); a point that no chip answers is not covered. Near the edge of the imagery
        the blend therefore uses fewer tiles (the embedding stays defined, a little less smooth);
        inside the imagery it is the full tent blend. `on_chips(done, total)` is called after
        each batch of chips encoded (for progress bars)."""
        latlon = _as_points(latlon, "Embedder.point")
        if self.world is None:
            raise ValueError("Embedder.point needs a world (an RS source) to read chips from")
        if len(latlon) == 0:
            return np.zeros((0, self.dim), dtype=np.float32), np.zeros(0, bool)
        if self.tiling is None:
            return self._point_fixed(latlon, on_chips)
        rows, cols, weights = self.tiling.tiles_of(latlon)
        return self._blend(latlon, rows, cols, weights, on_chips)

    def _point_fixed(self, latlon, on_chips=None) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-chip sources: each point is answered by the one chip `world.locate` gives."""
        chip = self.world.locate(latlon)
        out = np.full((len(latlon), self.dim), np.nan, dtype=np.float32)
        uniq = np.unique(chip[chip >= 0])
        for b in range(0, len(uniq), self.tile_batch):
            ids = uniq[b : b + self.tile_batch]
            rs, bbox = self.world.read(ids)
            groups = [np.flatnonzero(chip == i) for i in ids]
            z, _ = self._encode_query(rs, bbox, [latlon[g] for g in groups])
            for g, zt in zip(groups, z):
                out[g] = _normalise(zt)
            if on_chips is not None:
                on_chips(b + len(ids), len(uniq))
        return out, chip >= 0

    def _blend(self, latlon, rows, cols, weights, on_chips=None) -> tuple[np.ndarray, np.ndarray]:
        n = len(latlon)
        out = np.zeros((n, self.dim), dtype=np.float64)
        covered = np.zeros(n, bool)
        keys = rows * self.tiling.n_cols + cols  # [N, 4] tile ids
        flat_keys = np.where(weights > 0, keys, -1).ravel()  # tiles with zero weight are skipped
        order = np.argsort(flat_keys, kind="stable")
        order = order[flat_keys[order] >= 0]
        uniq, starts = np.unique(flat_keys[order], return_index=True)
        bounds = np.append(starts, len(order))
        for b in range(0, len(uniq), self.tile_batch):
            tile_ids = uniq[b : b + self.tile_batch]
            groups = [order[bounds[i] : bounds[i + 1]] for i in range(b, b + len(tile_ids))]
            z, ok = self._query_tiles(tile_ids, [latlon[g // 4] for g in groups])
            for g, zt, okt in zip(groups, z, ok):  # tiles without imagery do not vote
                np.add.at(out, g[okt] // 4, weights.ravel()[g[okt], None] * zt[okt])
                covered[g[okt] // 4] = True
            if on_chips is not None:
                on_chips(b + len(tile_ids), len(uniq))
        emb = _normalise(out)
        emb[~covered] = np.nan
        return emb, covered

    def _query_tiles(self, tile_ids: np.ndarray, points: list[np.ndarray]):
        """Encode a batch of tiles once and query each at its points -> (list of [n_t, E],
        list of covered bool [n_t])."""
        centres = self.tiling.centre(tile_ids // self.tiling.n_cols, tile_ids % self.tiling.n_cols)
        if callable(getattr(self.world, "chips_with_coverage", None)):
            rs, bbox, valid = self.world.chips_with_coverage(centres, self.tiling.chip_px)
        else:
            (rs, bbox), valid = self.world.chips(centres, self.tiling.chip_px), None
        return self._encode_query(rs, bbox, points, valid)

    @torch.no_grad()
    def _encode_query(self, rs, bbox, points: list[np.ndarray], valid=None):
        """Encode chips [B, C, H, W] once and query chip i at points[i] [n_i, 2] -> (list of
        [n_i, E] float64, list of covered bool [n_i]: chip coverage and data at the point)."""
        oks = [np.ones(len(p), bool) for p in points]
        if valid is not None:
            min_cov = float(getattr(self.world, "min_coverage", 1.0))
            for i, p in enumerate(points):
                v = valid[i]
                if v.mean() < min_cov:
                    oks[i][:] = False
                    continue
                xy = geo.to_chip_coords(p, np.asarray(bbox[i], np.float64))
                size = v.shape[0]
                c = np.clip(((xy[:, 0] + 1) / 2 * size).astype(np.int64), 0, size - 1)
                r = np.clip(((xy[:, 1] + 1) / 2 * size).astype(np.int64), 0, size - 1)
                oks[i] &= v[r, c]
        rs = preprocess_rs(rs, self.config).to(self.device)
        tokens = self.model.encode_rs(rs)
        self.encoder_passes += len(points)
        longest = max(len(p) for p in points)
        padded = np.stack(
            [np.concatenate([p, np.repeat(p[:1], longest - len(p), 0)]) for p in points]
        )
        z = self.model.query_rs(
            tokens, torch.as_tensor(bbox, dtype=torch.float64), torch.from_numpy(padded)
        )
        z = z.double().cpu().numpy()
        return [z[i, : len(p)] for i, p in enumerate(points)], oks

    # -- street views and locations -------------------------------------------------------
    @torch.no_grad()
    def street_view(self, images, batch_size: int = 64) -> np.ndarray:
        """uint8 RGB images (a sequence of [H, W, 3], an array [N, H, W, 3] or one [H, W, 3])
        -> [N, E], in the space shared with `point` (the SV projection applied),
        each first centre-cropped to a square and resized, antialiased, to the model's input
        (`gair.images.square_resize`: a photo is never squashed, whatever its size);
        L2-normalised; no images give [0, E]. ValueError naming the index of the first image
        that is not a non-empty uint8 [H, W, 3] array."""
        _positive_int(batch_size, "Embedder.street_view: batch_size")
        images = _as_images(images, "Embedder.street_view")
        if not len(images):
            return np.zeros((0, self.dim), dtype=np.float32)
        size = int(self.config["sv"]["img_size"])
        if not (isinstance(images, np.ndarray) and images.shape[1:3] == (size, size)):
            images = np.stack([square_resize(im, size) for im in images])
        chunks = []
        for i in range(0, len(images), batch_size):
            sv = preprocess_sv(images[i : i + batch_size], self.config).to(self.device)
            chunks.append(self.model.project_sv(self.model.encode_sv(sv)).double().cpu().numpy())
        return _normalise(np.concatenate(chunks))

    @torch.no_grad()
    def location(self, latlon, batch_size: int = 65536) -> np.ndarray:
        """Location embeddings of points [N, 2] (or one point [2]) (lat, lon) -> [N, E] float32,
        L2-normalised; N = 0 gives [0, E]. Shapes and coordinates are validated as in `point`."""
        _positive_int(batch_size, "Embedder.location: batch_size")
        latlon = _as_points(latlon, "Embedder.location")
        chunks = [
            self.model.encode_location(torch.from_numpy(latlon[i : i + batch_size]))
            .double()
            .cpu()
            .numpy()
            for i in range(0, len(latlon), batch_size)
        ]
        return _normalise(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), np.float32)


def resolve_device(device: str | None = None) -> torch.device:
    """ "auto" (or None): CUDA when available, else the CPU; "cpu", "cuda", "cuda:1" as given.
    ValueError for an unknown name or CUDA asked for where there is none."""
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device must be auto, cpu or cuda[:N], got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device} asked for CUDA, but torch sees no CUDA device here")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda[:N], got {device!r}")
    return dev


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _as_points(latlon, method: str) -> np.ndarray:
    """Validated points [N, 2] float64 (lat, lon), longitudes wrapped to [-180, 180).

    Accepts one point [2] or points [N, 2] ([2, 2] reads as two points); the shape is checked
    before anything is reshaped, so a [2, N] array (a lat row over a lon row) is refused rather
    than read as N scrambled points.
    """
    if isinstance(latlon, torch.Tensor):
        latlon = latlon.detach().cpu().numpy()
    try:
        shape = np.shape(latlon)
    except ValueError as err:  # a ragged nested sequence
        raise ValueError(
            f"{method}: latlon must be [2] or [N, 2] (lat, lon) numbers, got a ragged sequence"
        ) from err
    expected = "[2] (one (lat, lon) point) or [N, 2] ((lat, lon) pairs, latitude first)"
    if shape == (0,):
        return np.zeros((0, 2), dtype=np.float64)
    if len(shape) == 2 and shape[0] == 2 and shape[1] != 2:
        raise ValueError(
            f"{method}: latlon must be {expected}, got shape {shape}, which looks like [2, N] "
            "(a lat row and a lon row): pass latlon.T"
        )
    if shape != (2,) and not (len(shape) == 2 and shape[1] == 2):
        raise ValueError(f"{method}: latlon must be {expected}, got shape {shape}")
    return geo.validate_latlon(latlon, f"{method}: latlon").reshape(-1, 2)


def _as_images(images, method: str) -> list[np.ndarray] | np.ndarray:
    """A uint8 [N, H, W, 3] array or a list of uint8 [H, W, 3] arrays (sizes may differ)."""
    expected = "a uint8 RGB array [H, W, 3] with H, W > 0"
    if isinstance(images, str | bytes | Path):
        raise ValueError(f"{method}: expected images ({expected}), got a path {images!r}")
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray) and images.dtype != object and images.ndim == 3:
        images = images[None]
    if isinstance(images, np.ndarray) and images.dtype != object:
        if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] != 3:
            raise ValueError(
                f"{method}: images must be uint8 [N, H, W, 3] (or a list of {expected}), "
                f"got shape {images.shape} dtype {images.dtype}"
            )
        if len(images) and (images.shape[1] == 0 or images.shape[2] == 0):
            raise ValueError(
                f"{method}: image 0 is empty, shape {images.shape[1:]}; expected {expected}"
            )
        return images
    try:
        items = list(images)
    except TypeError as err:
        raise ValueError(
            f"{method}: images must be a sequence of {expected}, got {type(images).__name__}"
        ) from err
    arrays = []
    for i, im in enumerate(items):
        arr = im.detach().cpu().numpy() if isinstance(im, torch.Tensor) else np.asarray(im)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
            raise ValueError(
                f"{method}: image {i} must be {expected}, got shape {arr.shape} dtype {arr.dtype}"
            )
        arrays.append(arr)
    return arrays


def _demo_world_width() -> int:
    from gair.world import grid

    return grid.WIDTH


def _normalise(x: np.ndarray) -> np.ndarray:
    return (
        F.normalize(torch.from_numpy(np.asarray(x, dtype=np.float64)), dim=-1)
        .numpy()
        .astype(np.float32)
    )
