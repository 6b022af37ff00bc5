"""Test helpers for the official-release import: a random checkpoint in the release's layout,
and an independent plain-torch re-computation of the release's documented forward passes
(GAIR-NOTES.md, "The official release's interface"). Nothing here imports gair's encoders:
the references are written from the notes, in float64, with per-head loops, explicit
LayerNorm/GELU formulas, `F.unfold` patching and `grid_sample` neighbour picking, so they do
not share code (or mistakes) with the implementation under test.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RS_BANDS = 10
RS_PATCH = 8
RS_IMG = 96
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796


# -- a random checkpoint in the release's layout --------------------------------------------
def make_release_state(
    rs_width: int = 48,
    rs_depth: int = 2,
    sv_width: int = 48,
    sv_depth: int = 2,
    sv_img: int = 224,
    sv_patch: int = 16,
    loc_hidden: int = 64,
    n_freq: int = 16,
    sigmas=(1.0, 16.0, 256.0),
    seed: int = 0,
    extras: bool = True,
) -> dict[str, torch.Tensor]:
    """Every tensor the notes list, random, with fan-in scaled weights (so activations stay
    O(1)). `extras` adds the release's unused CROMA `layer_norm` and `head`."""
    g = torch.Generator().manual_seed(seed)
    e = sv_width  # NILI / projection / location output size = SV width

    def lin(name: str, d_out: int, d_in: int, bias: bool = True) -> dict:
        # uniform, variance 1 / fan-in (one in-place pass: cheap at ViT-B size)
        bound = math.sqrt(3.0 / d_in)
        out = {f"{name}.weight": torch.empty(d_out, d_in).uniform_(-bound, bound, generator=g)}
        if bias:
            out[f"{name}.bias"] = 0.1 * torch.randn(d_out, generator=g)
        return out

    def norm(name: str, d: int) -> dict:
        return {
            f"{name}.weight": 1 + 0.1 * torch.randn(d, generator=g),
            f"{name}.bias": 0.1 * torch.randn(d, generator=g),
        }

    s: dict[str, torch.Tensor] = {}
    rs = "rs_encoder.s2_encoder."
    s.update(lin(rs + "linear_input", rs_width, RS_BANDS * RS_PATCH * RS_PATCH))
    for n in range(rs_depth):
        a, f = f"{rs}transformer.layers.{n}.0.", f"{rs}transformer.layers.{n}.1."
        s.update(norm(a + "input_norm", rs_width))
        s.update(lin(a + "to_qkv", 3 * rs_width, rs_width, bias=False))
        s.update(lin(a + "to_out", rs_width, rs_width))
        s.update(norm(f + "input_norm", rs_width))
        s.update(lin(f + "net.0", 4 * rs_width, rs_width))
        s.update(lin(f + "net.3", rs_width, 4 * rs_width))
    if extras:
        s.update(norm(rs + "layer_norm", rs_width))
        s.update(lin(rs + "head", 7, rs_width))
    sv = "sv_encoder."
    n_patches = (sv_img // sv_patch) ** 2
    s[sv + "embeddings.cls_token"] = 0.5 * torch.randn(1, 1, sv_width, generator=g)
    s[sv + "embeddings.position_embeddings"] = 0.5 * torch.randn(
        1, 1 + n_patches, sv_width, generator=g
    )
    s[sv + "embeddings.patch_embeddings.projection.weight"] = torch.randn(
        sv_width, 3, sv_patch, sv_patch, generator=g
    ) / math.sqrt(3 * sv_patch * sv_patch)
    s[sv + "embeddings.patch_embeddings.projection.bias"] = 0.1 * torch.randn(sv_width, generator=g)
    for n in range(sv_depth):
        layer = f"{sv}encoder.layer.{n}."
        for part in ("query", "key", "value"):
            s.update(lin(f"{layer}attention.attention.{part}", sv_width, sv_width))
        s.update(lin(f"{layer}attention.output.dense", sv_width, sv_width))
        s.update(lin(f"{layer}intermediate.dense", 4 * sv_width, sv_width))
        s.update(lin(f"{layer}output.dense", sv_width, 4 * sv_width))
        s.update(norm(f"{layer}layernorm_before", sv_width))
        s.update(norm(f"{layer}layernorm_after", sv_width))
    s.update(norm(sv + "layernorm", sv_width))
    s.update(lin(sv + "pooler.dense", sv_width, sv_width))
    for i, sigma in enumerate(sigmas):
        c = f"location_encoder.LocEnc{i}."
        s[c + "capsule.0.b"] = torch.randn(n_freq, 2, generator=g) * sigma
        s.update(lin(c + "capsule.1", loc_hidden, 2 * n_freq))
        s.update(lin(c + "capsule.3", loc_hidden, loc_hidden))
        s.update(lin(c + "capsule.5", loc_hidden, loc_hidden))
        s.update(lin(c + "head.0", e, loc_hidden))
    s.update(lin("imnet", e, 9 * rs_width + 2))
    s.update(lin("optical_proj", e, e))
    return s


def add_gair_model_extras(state: dict, seed: int = 100, queue_size: int = 64) -> dict:
    """The state dict of the release's whole `GAIRModel`: `state` (the tensors the embeddings
    use, with the CROMA wrapper's layer_norm/head) plus the 33 tensors that no embedding reads:
    the transformer point query `nerf_fn` (2 blocks of attention create_qkv/out/input_norm and
    FFN net.0/net.2/input_norm, a final norm_out), `query_feature`, `rs_patch_pos_encoding`,
    the location queue and its pointer, `logit_scale` (log 1/0.07) and the unused `radar_proj`
    and `location_proj`. The RS tensors of the wrapper are moved to `rs_encoder.layer_norm` /
    `rs_encoder.head` (where GAIRModel has them) when `state` has them under s2_encoder."""
    g = torch.Generator().manual_seed(seed)
    e = state["optical_proj.weight"].shape[0]
    n_tokens = (RS_IMG // RS_PATCH) ** 2
    out = {}
    for key, value in state.items():
        for part in ("layer_norm.", "head."):
            if key.startswith("rs_encoder.s2_encoder." + part):
                key = "rs_encoder." + key[len("rs_encoder.s2_encoder.") :]
        out[key] = value

    def rand(*shape):
        return 0.02 * torch.randn(*shape, generator=g)

    for n in range(2):
        a, f = f"nerf_fn.layers.{n}.0.", f"nerf_fn.layers.{n}.1."
        out[a + "create_qkv.weight"] = rand(3 * e, e)
        out[a + "out.weight"], out[a + "out.bias"] = rand(e, e), rand(e)
        out[a + "input_norm.weight"], out[a + "input_norm.bias"] = 1 + rand(e), rand(e)
        out[f + "net.0.weight"], out[f + "net.0.bias"] = rand(4 * e, e), rand(4 * e)
        out[f + "net.2.weight"], out[f + "net.2.bias"] = rand(e, 4 * e), rand(e)
        out[f + "input_norm.weight"], out[f + "input_norm.bias"] = 1 + rand(e), rand(e)
    out["nerf_fn.norm_out.weight"], out["nerf_fn.norm_out.bias"] = 1 + rand(e), rand(e)
    out["query_feature"] = rand(1, 1, e)
    out["rs_patch_pos_encoding"] = rand(1, n_tokens, e)
    queue = torch.randn(2, queue_size, generator=g)
    out["queue_for_location"] = queue / queue.norm(dim=0, keepdim=True)
    out["queue_ptr_location"] = torch.zeros(1, dtype=torch.long)
    out["logit_scale"] = torch.ones([]) * math.log(1 / 0.07)
    for name in ("radar_proj", "location_proj"):
        out[f"{name}.weight"], out[f"{name}.bias"] = rand(e, e), rand(e)
    return out


# HF ViT per-layer names: transformers 4 -> the refactored layout of recent transformers 5
# (read from transformers 5.24's ViTModel: `layers.N.attention.{q,k,v,o}_proj`,
# `layers.N.mlp.fc{1,2}`; embeddings, layernorm and pooler keep their names).
_T5_PARTS = [
    ("attention.attention.query.", "attention.q_proj."),
    ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
]


def to_transformers5_layout(state: dict) -> dict:
    """`state` with the street-view ViT's layers named as a transformers 5 ViTModel saves them."""
    out = {}
    for key, value in state.items():
        if key.startswith("sv_encoder.encoder.layer."):
            rest = key[len("sv_encoder.encoder.layer.") :]
            n, _, tail = rest.partition(".")
            for old, new in _T5_PARTS:
                if tail.startswith(old):
                    tail = new + tail[len(old) :]
                    break
            key = f"sv_encoder.layers.{n}.{tail}"
        out[key] = value
    return out


def save_release_checkpoint(state: dict, path, prefix: str = "module.", wrap: bool = True) -> None:
    """torch.save in the release's format: {"model": state dict} with a `module.` prefix."""
    sd = {prefix + k: v for k, v in state.items()}
    torch.save({"model": sd, "epoch": 3} if wrap else sd, path)


# -- reference computations (float64, from the notes) ---------------------------------------
def _d(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float64)


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * _d(w) + _d(b)


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0)))


def linear(x, s, name, bias=True):
    out = x @ _d(s[f"{name}.weight"]).T
    return out + _d(s[f"{name}.bias"]) if bias else out


def alibi_slopes_ref(heads: int) -> list[float]:
    """For a power-of-two head count n: 2^(-8/n * k), k = 1..n (16 heads: 2^-0.5 ... 2^-8)."""
    assert heads & (heads - 1) == 0
    return [2.0 ** (-8.0 * k / heads) for k in range(1, heads + 1)]


def alibi_bias_ref(heads: int, grid: int) -> torch.Tensor:
    """bias[h, p, q] = -slope_h * euclidean distance of patches p, q (row-major) on the grid."""
    idx = torch.arange(grid * grid)
    rows, cols = (idx // grid).double(), (idx % grid).double()
    dist = torch.sqrt((rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2)
    slopes = torch.tensor(alibi_slopes_ref(heads), dtype=torch.float64)
    return -slopes[:, None, None] * dist


def _attend(q, k, v, heads, bias=None):
    b, n, d = q.shape
    dh = d // heads
    outs = []
    for h in range(heads):
        sl = slice(h * dh, (h + 1) * dh)
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) * dh**-0.5
        if bias is not None:
            scores = scores + bias[h]
        outs.append(torch.softmax(scores, -1) @ v[..., sl])
    return torch.cat(outs, -1)


def croma_tokens_ref(s: dict, rs: torch.Tensor, heads: int, depth: int) -> torch.Tensor:
    """[B, 10, 96, 96] -> tokens [B, 144, D] (float64), per the notes."""
    p = RS_PATCH
    x = F.unfold(_d(rs), kernel_size=p, stride=p).transpose(1, 2)  # [B, N, C*p*p] channel-major
    pre = "rs_encoder.s2_encoder."
    x = linear(x, s, pre + "linear_input")
    bias = alibi_bias_ref(heads, rs.shape[-1] // p)
    for n in range(depth):
        a, f = f"{pre}transformer.layers.{n}.0.", f"{pre}transformer.layers.{n}.1."
        h = layer_norm(x, s[a + "input_norm.weight"], s[a + "input_norm.bias"], 1e-5)
        qkv = linear(h, s, a + "to_qkv", bias=False)
        d = x.shape[-1]
        q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
        x = x + linear(_attend(q, k, v, heads, bias), s, a + "to_out")
        h = layer_norm(x, s[f + "input_norm.weight"], s[f + "input_norm.bias"], 1e-5)
        x = x + linear(gelu(linear(h, s, f + "net.0")), s, f + "net.3")
    return x


def hf_vit_ref(s: dict, sv: torch.Tensor, heads: int, depth: int) -> torch.Tensor:
    """[B, 3, S, S] -> tanh pooler output [B, D] (float64), per the notes / HF ViT."""
    pre = "sv_encoder."
    w = _d(s[pre + "embeddings.patch_embeddings.projection.weight"])
    x = F.conv2d(
        _d(sv), w, _d(s[pre + "embeddings.patch_embeddings.projection.bias"]), stride=w.shape[-1]
    )
    x = x.flatten(2).transpose(1, 2)
    cls = _d(s[pre + "embeddings.cls_token"]).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], 1) + _d(s[pre + "embeddings.position_embeddings"])
    for n in range(depth):
        L = f"{pre}encoder.layer.{n}."
        h = layer_norm(x, s[L + "layernorm_before.weight"], s[L + "layernorm_before.bias"], 1e-12)
        att = _attend(
            linear(h, s, L + "attention.attention.query"),
            linear(h, s, L + "attention.attention.key"),
            linear(h, s, L + "attention.attention.value"),
            heads,
        )
        x = x + linear(att, s, L + "attention.output.dense")
        h = layer_norm(x, s[L + "layernorm_after.weight"], s[L + "layernorm_after.bias"], 1e-12)
        x = x + linear(gelu(linear(h, s, L + "intermediate.dense")), s, L + "output.dense")
    x = layer_norm(x, s[pre + "layernorm.weight"], s[pre + "layernorm.bias"], 1e-12)
    return torch.tanh(linear(x[:, 0], s, pre + "pooler.dense"))


def equal_earth_ref(lon_deg: torch.Tensor, lat_deg: torch.Tensor) -> torch.Tensor:
    """(lon, lat) degrees -> Equal Earth (x, y) * 66.50336/180, float64."""
    lon, lat = torch.deg2rad(_d(lon_deg)), torch.deg2rad(_d(lat_deg))
    theta = torch.asin(math.sqrt(3) / 2 * torch.sin(lat))
    x = 2 * math.sqrt(3) * lon * torch.cos(theta)
    x = x / (3 * (9 * A4 * theta**8 + 7 * A3 * theta**6 + 3 * A2 * theta**2 + A1))
    y = A1 * theta + A2 * theta**3 + A3 * theta**7 + A4 * theta**9
    return torch.stack([x, y], -1) * 66.50336 / 180


def location_from_v_ref(s: dict, v: torch.Tensor) -> torch.Tensor:
    """Projected coordinates v [..., 2] -> summed branch outputs [..., E] (float64)."""
    v = _d(v)
    out = 0
    i = 0
    while f"location_encoder.LocEnc{i}.capsule.0.b" in s:
        c = f"location_encoder.LocEnc{i}."
        proj = 2 * math.pi * v @ _d(s[c + "capsule.0.b"]).T
        h = torch.cat([torch.cos(proj), torch.sin(proj)], -1)
        for j in (1, 3, 5):
            h = torch.relu(linear(h, s, f"{c}capsule.{j}"))
        out = out + linear(h, s, c + "head.0")
        i += 1
    return out


def location_ref(s: dict, lonlat: torch.Tensor) -> torch.Tensor:
    """Release-convention (lon, lat) [..., 2] -> location embedding [..., E] (float64)."""
    return location_from_v_ref(s, equal_earth_ref(lonlat[..., 0], lonlat[..., 1]))


def nili_ref(s: dict, tokens: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """LIIF-style local ensemble per the notes. tokens [B, D, h, w], xy [B, N, 2] chip coords
    (x east, y south) -> [B, N, E] (float64)."""
    tokens, xy = _d(tokens), _d(xy)
    b, d, h, w = tokens.shape
    feat = F.unfold(tokens, 3, padding=1).view(b, 9 * d, h, w)  # channel-major, zero padded
    cy = -1 + (2 * torch.arange(h, dtype=torch.float64) + 1) / h
    cx = -1 + (2 * torch.arange(w, dtype=torch.float64) + 1) / w
    coord = torch.stack(torch.meshgrid(cx, cy, indexing="xy"), 0)  # [2, h, w] as (x, y)
    coord = coord.unsqueeze(0).expand(b, -1, -1, -1)
    preds, areas = [], []
    for vx in (-1, 1):
        for vy in (-1, 1):
            q = xy.clone()
            q[..., 0] += vx / w + 1e-6
            q[..., 1] += vy / h + 1e-6
            q = q.clamp(-1 + 1e-6, 1 - 1e-6).unsqueeze(1)  # [B, 1, N, 2]
            qf = F.grid_sample(feat, q, mode="nearest", align_corners=False)[:, :, 0]
            qc = F.grid_sample(coord, q, mode="nearest", align_corners=False)[:, :, 0]
            rel = (xy - qc.transpose(1, 2)) * torch.tensor([w, h], dtype=torch.float64)
            inp = torch.cat([qf.transpose(1, 2), rel], -1)  # [unfolded feature, (x*w, y*h)]
            preds.append(linear(inp, s, "imnet"))
            areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
    total = sum(areas)
    # each prediction is weighted by the area of its diagonally opposite neighbour
    return sum(p * (areas[3 - k] / total).unsqueeze(-1) for k, p in enumerate(preds))


def chip_xy_ref(lon, lat, release_bbox) -> torch.Tensor:
    """Release (lon, lat) + bbox [lon_min, lat_max, lon_max, lat_min] -> chip (x, y)."""
    lon_min, lat_max, lon_max, lat_min = release_bbox
    x = (lon - lon_min) / (lon_max - lon_min) * 2 - 1
    y = (lat_max - lat) / (lat_max - lat_min) * 2 - 1
    return torch.tensor([[x, y]], dtype=torch.float64)
