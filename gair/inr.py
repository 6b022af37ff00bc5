"""The INR point query (GAIR's NILI, after LIIF's local implicit function) and its baselines.

Input: an RS token grid `tokens` [B, D, h, w] and query points `xy` [B, N, 2] in chip
coordinates (x = -1 west .. +1 east, y = -1 north .. +1 south). Output: [B, N, E].

NILI, per query point:
1. feature unfolding: each cell's vector becomes its 3x3 neighbourhood, channel-major (each
   channel's 9 values together), zero padded: D -> 9D;
2. local ensemble: the 4 cells whose centres surround the query;
3. each cell k predicts p_k = decoder([unfolded_k, r_k]), r_k = (query - centre_k) * (w, h),
   i.e. in units where one cell = 2;
4. blend with bilinear (diagonally opposite area) weights.

Two samplings of step 2/4: "exact" computes the 4 neighbours and bilinear weights directly
(outside the outermost cell centres the grid's edge cells are replicated, so the output at every
cell centre, edge cells included, is that cell's decoded value); "official" reproduces the
release's shift-and-clamp nearest sampling with its +1e-6 shift and +1e-9 areas.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def cell_centres(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Chip coordinates of the cell centres, [h, w, 2] as (x, y): (-1 + (2j+1)/w, -1 + (2i+1)/h)."""
    ys = -1 + (2 * torch.arange(h, device=device, dtype=dtype) + 1) / h
    xs = -1 + (2 * torch.arange(w, device=device, dtype=dtype) + 1) / w
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)


def unfold3x3(tokens: torch.Tensor) -> torch.Tensor:
    """[B, D, h, w] -> [B, 9D, h*w]: each cell's zero-padded 3x3 neighbourhood, channel-major."""
    return F.unfold(tokens, kernel_size=3, padding=1)


def _neighbours_exact(xy: torch.Tensor, h: int, w: int):
    """The 4 surrounding cells and their bilinear weights. Returns (rows, cols, weights), each
    [B, N, 4], ordered (top-left, top-right, bottom-left, bottom-right)."""
    tx = (xy[..., 0] + 1) / 2 * w - 0.5  # continuous column index; centres at integers
    ty = (xy[..., 1] + 1) / 2 * h - 0.5
    j0, i0 = torch.floor(tx), torch.floor(ty)
    fx, fy = tx - j0, ty - i0
    rows = torch.stack([i0, i0, i0 + 1, i0 + 1], -1).clamp(0, h - 1).long()
    cols = torch.stack([j0, j0 + 1, j0, j0 + 1], -1).clamp(0, w - 1).long()
    weights = torch.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], -1)
    return rows, cols, weights


def _liif_centre(index: torch.Tensor, n: int) -> torch.Tensor:
    """Cell centres in LIIF's `make_coord` arithmetic: (-1 + r) + (2r) * index with r = 1/n,
    the scalars in double and the product in the tensor's dtype (bit-exact with the release)."""
    r = 1.0 / n
    return (2 * r) * index + (-1 + r)


def _neighbours_official(xy: torch.Tensor, h: int, w: int):
    """The release's local ensemble: shift the query by +-half a cell (+1e-6), clamp inside,
    take the nearest cell (grid_sample nearest, align_corners=False), weight each by the area
    between the query and the diagonally opposite pick (+1e-9)."""
    eps_shift, rows, cols, areas = 1e-6, [], [], []
    for vx in (-1, 1):
        for vy in (-1, 1):
            # the shift is one scalar, added once (as LIIF does)
            x = (xy[..., 0] + (vx / w + eps_shift)).clamp(-1 + 1e-6, 1 - 1e-6)
            y = (xy[..., 1] + (vy / h + eps_shift)).clamp(-1 + 1e-6, 1 - 1e-6)
            # grid_sample's unnormalisation and nearest rounding (round half to even)
            j = torch.round(((x + 1) * w - 1) / 2).clamp(0, w - 1)
            i = torch.round(((y + 1) * h - 1) / 2).clamp(0, h - 1)
            rel_x = (xy[..., 0] - _liif_centre(j, w)) * w
            rel_y = (xy[..., 1] - _liif_centre(i, h)) * h
            rows.append(i.long())
            cols.append(j.long())
            areas.append(torch.abs(rel_x * rel_y) + 1e-9)
    areas = torch.stack(areas[::-1], -1)  # weight of pick k = area of its diagonal opposite
    return torch.stack(rows, -1), torch.stack(cols, -1), areas / areas.sum(-1, keepdim=True)


def _gather_cells(per_cell: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """per_cell [B, K, h*w], index [B, M] -> [B, M, K]."""
    k = per_cell.shape[1]
    return torch.gather(per_cell, 2, index.unsqueeze(1).expand(-1, k, -1)).transpose(1, 2)


class NILI(nn.Module):
    """Neural implicit local interpolation: [B, D, h, w] tokens + [B, N, 2] xy -> [B, N, E]."""

    def __init__(
        self,
        width: int,
        embed_dim: int,
        decoder: str = "linear",
        mlp_hidden=(256, 256),
        sampling="exact",
    ):
        super().__init__()
        in_dim = 9 * width + 2
        if decoder == "linear":
            self.decoder = nn.Linear(in_dim, embed_dim)
        else:
            layers, dim = [], in_dim
            for hidden in mlp_hidden:
                layers += [nn.Linear(dim, hidden), nn.ReLU()]
                dim = hidden
            self.decoder = nn.Sequential(*layers, nn.Linear(dim, embed_dim))
        self.sampling = sampling

    def forward(self, tokens: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        b, d, h, w = tokens.shape
        n = xy.shape[1]
        xy = xy.to(tokens.dtype)
        pick = _neighbours_exact if self.sampling == "exact" else _neighbours_official
        rows, cols, weights = pick(xy, h, w)  # [B, N, 4] each
        centres = cell_centres(h, w, tokens.device, tokens.dtype)  # [h, w, 2]
        rel = (xy.unsqueeze(2) - centres[rows, cols]) * torch.tensor(
            [w, h], dtype=xy.dtype, device=xy.device
        )
        unfolded = unfold3x3(tokens)  # [B, 9D, h*w]
        flat_index = (rows * w + cols).reshape(b, n * 4)
        if isinstance(self.decoder, nn.Linear):
            # Linear(cat(f, r)) = W_f f + W_r r + b: decode each cell once, then gather (exact).
            w_feat, w_rel = self.decoder.weight[:, : 9 * d], self.decoder.weight[:, 9 * d :]
            per_cell = torch.einsum("ek,bkc->bec", w_feat, unfolded)  # [B, E, h*w]
            pred = _gather_cells(per_cell, flat_index).reshape(b, n, 4, -1)
            pred = pred + rel @ w_rel.T + self.decoder.bias
        else:
            feats = _gather_cells(unfolded, flat_index).reshape(b, n, 4, 9 * d)
            pred = self.decoder(torch.cat([feats, rel], -1))  # [B, N, 4, E]
        return (weights.unsqueeze(-1) * pred).sum(2)

    @torch.no_grad()
    def decode_cells(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each cell's own decoded value (relative coordinate 0): [B, D, h, w] -> [B, h, w, E]."""
        b, d, h, w = tokens.shape
        feats = unfold3x3(tokens).transpose(1, 2)  # [B, h*w, 9D]
        zeros = feats.new_zeros(b, h * w, 2)
        return self.decoder(torch.cat([feats, zeros], -1)).reshape(b, h, w, -1)


class GridSampleQuery(nn.Module):
    """Baseline: bilinear/bicubic sampling of the token grid, then Linear D -> E."""

    def __init__(self, width: int, embed_dim: int, mode: str):
        super().__init__()
        self.mode = mode
        self.proj = nn.Linear(width, embed_dim)

    def forward(self, tokens: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        grid = xy.to(tokens.dtype).unsqueeze(1)  # [B, 1, N, 2], grid_sample wants (x, y)
        sampled = F.grid_sample(
            tokens, grid, mode=self.mode, padding_mode="border", align_corners=False
        )
        return self.proj(sampled[:, :, 0].transpose(1, 2))


class CenterPoolQuery(nn.Module):
    """Baseline without a point query: mean of all tokens, then Linear D -> E, same for every point."""

    def __init__(self, width: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(width, embed_dim)

    def forward(self, tokens: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        pooled = self.proj(tokens.mean((2, 3)))  # [B, E]
        return pooled.unsqueeze(1).expand(-1, xy.shape[1], -1)


def build_point_query(cfg: dict, width: int, embed_dim: int) -> nn.Module:
    """The point query named by config section `inr` (mode nili | bilinear | bicubic | center-pool)."""
    mode = cfg["mode"]
    if mode == "nili":
        return NILI(width, embed_dim, cfg["decoder"], tuple(cfg["mlp_hidden"]), cfg["sampling"])
    if mode in ("bilinear", "bicubic"):
        return GridSampleQuery(width, embed_dim, mode)
    if mode == "center-pool":
        return CenterPoolQuery(width, embed_dim)
    raise ValueError(f"unknown inr.mode {mode!r}")
