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
from gair.preprocess import preprocess_rs, preprocess_sv


@dataclass(frozen=True)
class Tiling:
    """The canonical tiling of a global plate-carree raster (row 0 at 90N, col 0 at 180W)."""

    width_px: int  # raster width (360 degrees)
    chip_px: int
    stride_px: int

    @classmethod
    def for_raster(cls, width_px: int, chip_px: int) -> Tiling:
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
        tile_batch: tiles per RS encoder batch.
    """

    def __init__(
        self, run_dir: str | Path, world=None, device: str | None = None, tile_batch: int = 64
    ):
        self.run_dir = Path(run_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = load_model(self.run_dir, map_location=self.device)
        self.config = self.model.config
        self.run_config = read_run_config(self.run_dir)
        self.checkpoint_hash = checkpoint_hash(self.run_dir)
        self.world = world
        self.tile_batch = tile_batch
        self.tiling = None
        if world is not None:
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
        """INR embeddings of points [N, 2] (lat, lon) -> [N, E] float32, L2-normalised."""
        latlon = geo.validate_latlon(np.asarray(latlon, dtype=np.float64).reshape(-1, 2))
        if self.world is None:
            raise ValueError("Embedder.point needs a world (an RS source) to read chips from")
        rows, cols, weights = self.tiling.tiles_of(latlon)
        return self._blend(latlon, rows, cols, weights)

    def _blend(self, latlon, rows, cols, weights) -> np.ndarray:
        n = len(latlon)
        out = np.zeros((n, self.dim), dtype=np.float64)
        keys = rows * self.tiling.n_cols + cols  # [N, 4] tile ids
        flat_keys = np.where(weights > 0, keys, -1).ravel()  # tiles with zero weight are skipped
        order = np.argsort(flat_keys, kind="stable")
        order = order[flat_keys[order] >= 0]
        uniq, starts = np.unique(flat_keys[order], return_index=True)
        bounds = np.append(starts, len(order))
        for b in range(0, len(uniq), self.tile_batch):
            tile_ids = uniq[b : b + self.tile_batch]
            groups = [order[bounds[i] : bounds[i + 1]] for i in range(b, b + len(tile_ids))]
            z = self._query_tiles(tile_ids, [latlon[g // 4] for g in groups])
            for g, zt in zip(groups, z):
                np.add.at(out, g // 4, weights.ravel()[g, None] * zt)
        return _normalise(out)

    @torch.no_grad()
    def _query_tiles(self, tile_ids: np.ndarray, points: list[np.ndarray]) -> list[np.ndarray]:
        """Encode a batch of tiles once and query each at its points -> list of [n_t, E]."""
        centres = self.tiling.centre(tile_ids // self.tiling.n_cols, tile_ids % self.tiling.n_cols)
        rs, bbox = self.world.chips(centres, self.tiling.chip_px)
        rs = preprocess_rs(rs, self.config).to(self.device)
        tokens = self.model.encode_rs(rs)
        self.encoder_passes += len(tile_ids)
        longest = max(len(p) for p in points)
        padded = np.stack(
            [np.concatenate([p, np.repeat(p[:1], longest - len(p), 0)]) for p in points]
        )
        z = self.model.query_rs(
            tokens, torch.as_tensor(bbox, dtype=torch.float64), torch.from_numpy(padded)
        )
        z = z.double().cpu().numpy()
        return [z[i, : len(p)] for i, p in enumerate(points)]

    # -- street views and locations -------------------------------------------------------
    @torch.no_grad()
    def street_view(self, images, batch_size: int = 64) -> np.ndarray:
        """uint8 RGB images (list of [H, W, 3] or array [N, H, W, 3]) -> [N, E], in the space
        shared with `point` (the SV projection applied), L2-normalised."""
        images = (
            list(images) if not isinstance(images, np.ndarray) or images.ndim == 4 else [images]
        )
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        for i in range(0, len(images), batch_size):
            sv = preprocess_sv(images[i : i + batch_size], self.config).to(self.device)
            chunks.append(self.model.project_sv(self.model.encode_sv(sv)).double().cpu().numpy())
        return _normalise(np.concatenate(chunks))

    @torch.no_grad()
    def location(self, latlon, batch_size: int = 65536) -> np.ndarray:
        """Location embeddings of points [N, 2] (lat, lon) -> [N, E], L2-normalised."""
        latlon = geo.validate_latlon(np.asarray(latlon, dtype=np.float64).reshape(-1, 2))
        chunks = [
            self.model.encode_location(torch.from_numpy(latlon[i : i + batch_size]))
            .double()
            .cpu()
            .numpy()
            for i in range(0, len(latlon), batch_size)
        ]
        return _normalise(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), np.float32)


def _demo_world_width() -> int:
    from gair.world import grid

    return grid.WIDTH


def _normalise(x: np.ndarray) -> np.ndarray:
    return (
        F.normalize(torch.from_numpy(np.asarray(x, dtype=np.float64)), dim=-1)
        .numpy()
        .astype(np.float32)
    )
