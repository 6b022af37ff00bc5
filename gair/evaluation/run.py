"""`gair eval`: probes, cross-view retrieval and geolocation on the demo world's held-out blocks,
against baselines, with block-bootstrap intervals; writes a tidy eval.json and the app's heads.

eval.json: `rows` (task, method, input, probe, metric, higher_is_better, mean, ci_low, ci_high,
n, split), `comparisons` (task, method, baseline, metric, diff_mean, diff_ci_low, diff_ci_high,
split), `heads` (what was chosen on val and why), `decisions` (e.g. the primary geolocation
answer, chosen on val), `settings`. Splits: "test" (the held-out blocks), "unseen" (the whole
held-out region, a stress test), "val" only where a decision is made.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gair import build_model, save_model
from gair.atomic import write_json
from gair.embed import Embedder
from gair.evaluation import stats
from gair.evaluation.features import FEATURE_SETS, features, render_queries
from gair.evaluation.heads_select import select_heads
from gair.evaluation.points import eval_points
from gair.evaluation.probe_eval import probe_rows
from gair.evaluation.report import markdown_table, read_eval  # noqa: F401  (markdown_table re-exported)
from gair.evaluation.tasks import default_tasks

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "unseen")
FEATURES_VERSION = 1  # bump when a feature set's computation changes (invalidates the cache)


def _random_init_run(config: dict, tmp: Path) -> Path:
    torch.manual_seed(0)
    return save_model(build_model(config), tmp / "random-init")


def _labels(world, tasks, pts) -> dict:
    out = {}
    for split, p in pts.items():
        lab = world.labels(p["latlon"])
        out[split] = {t.name: t.encode(lab[t.name]) for t in tasks}
    return out


def retrieval_rows(method, sv_emb, place_emb, blocks, n_boot, seed) -> list[dict]:
    """SV -> place and place -> SV recall@k among the test candidates (row i matches i)."""
    rows, n = [], len(sv_emb)
    sims = sv_emb @ place_emb.T
    for name, s in (("sv->place", sims), ("place->sv", sims.T)):
        rank = (s > s[np.arange(n), np.arange(n)][:, None]).sum(1)  # 0 = correct item first
        for k in (1, 10):
            point, lo, hi, _ = stats.block_bootstrap(
                lambda hit: float(hit.mean()), blocks, n_boot, seed, hit=(rank < k)
            )
            rows.append(stats.row(name, method, "inr", f"R@{k}", point, lo, hi, n, "test"))
    return rows


STAGES = ("probes", "retrieval", "nearest-street-view", "geolocation")


def _stage_of(row: dict) -> str:
    """Which stage of `evaluate` wrote a row (or comparison) of eval.json."""
    task = row["task"]
    if task in ("sv->place", "place->sv"):
        return "retrieval"
    if task.startswith("nearest-street-view"):
        return "nearest-street-view"
    if task.startswith("geolocation"):
        return "geolocation"
    return "probes"  # the probe tasks, their comparisons and the shipped heads' rows


STAGE_DECISIONS = {
    "nearest-street-view": "streetview_query",
    "geolocation": "geolocation_primary_answer",
}


def _previous(run_dir: Path, stages: set, key: dict) -> dict:
    """The run's eval.json, to keep the stages not rerun: it must be of the same checkpoint,
    world and point sample, else ValueError (run every stage)."""
    prev = read_eval(run_dir)
    if prev is None:
        raise ValueError(
            f"--stages {sorted(stages)}: {run_dir} has no eval.json to keep the rest of"
        )
    entries = [*prev.get("rows", []), *prev.get("comparisons", [])]
    if not all(isinstance(r, dict) and isinstance(r.get("task"), str) for r in entries):
        raise ValueError(f"--stages: {run_dir}/eval.json has malformed rows; run every stage")
    old = {k: prev.get(k, prev.get("settings", {}).get(k)) for k in key}
    if old != key:  # n_points per split stands for the point sample (n_land, n_train, seed)
        raise ValueError(
            f"--stages: {run_dir}/eval.json was made with {old}, this run is {key}; "
            "run every stage (no --stages)"
        )
    return prev


def evaluate(
    run_dir: str | Path,
    world,
    n_land: int = 16000,
    n_train: int = 6000,
    n_boot: int = 1000,
    seed: int = 0,
    feature_sets=FEATURE_SETS,
    geolocation: bool = True,
    save_heads: bool = True,
    geo_queries: int = 1500,
    geo_gallery: int = 30000,
    stages=STAGES,
) -> dict:
    """Evaluate a run dir; writes eval.json (and heads) into it. Returns the eval.json dict.

    `stages`: a subset of STAGES to (re)compute; the others' rows, comparisons and decisions are
    kept from the run's eval.json, which must be of the same checkpoint, world and points."""
    run_dir = Path(run_dir)
    if n_land < 500 or n_train < 50 or n_boot < 100:
        raise ValueError(
            f"need n_land >= 500, n_train >= 50, n_boot >= 100; got {n_land}, {n_train}, {n_boot}"
        )
    stages = set(stages)
    if not stages or stages - set(STAGES):
        raise ValueError(
            f"stages must be a non-empty subset of {list(STAGES)}, got {sorted(stages)}"
        )
    if not geolocation:
        stages.discard("geolocation")
    started = time.perf_counter()
    embedder = Embedder(run_dir, world)
    sample = {"n_land": n_land, "n_train": n_train, "seed": seed, "n_boot": n_boot}
    n_unseen = max(50, n_land // 15)  # 800 for the demo's 12,000 land points
    pts = eval_points(world, n_land=n_land, n_train=n_train, n_unseen=n_unseen, seed=seed)
    n_points = {s: int(len(p["latlon"])) for s, p in pts.items()}
    key = {
        "checkpoint_hash": embedder.checkpoint_hash,
        "world": world.fingerprint,
        "seed": seed,
        "n_boot": n_boot,
        "n_points": n_points,
    }
    prev = _previous(run_dir, stages, key) if stages != set(STAGES) else None
    from gair.world.world import IGBP_CLASSES

    continents = sorted({c for p in pts.values() for c in world.labels(p["latlon"])["continent"]})
    tasks = default_tasks(IGBP_CLASSES, continents)
    labels = _labels(world, tasks, pts)
    blocks = {s: p["block"] for s, p in pts.items()}
    rows, comparisons, decisions, heads, heads_record = [], [], {}, None, None
    if prev is not None:
        rows = [r for r in prev["rows"] if _stage_of(r) not in stages]
        comparisons = [c for c in prev["comparisons"] if _stage_of(c) not in stages]
        decisions = {
            k: v
            for k, v in prev.get("decisions", {}).items()
            if k not in {STAGE_DECISIONS.get(s) for s in stages}
        }
        heads_record = prev.get("heads")
    with tempfile.TemporaryDirectory() as tmp:
        random_embedder = Embedder(_random_init_run(embedder.config, Path(tmp)), world)
        cache = _FeatureCache(embedder.checkpoint_hash, world.fingerprint, n_land, n_train, seed)
        wanted = (
            feature_sets if "probes" in stages else [(m, "inr") for m in ("gair", "random-init")]
        )
        feats = {}
        for method, inp in wanted:
            if cache.has(method, inp, pts):
                feats[(method, inp)] = cache.load(method, inp)
                continue
            log.info("features: %s/%s", method, inp)
            feats[(method, inp)] = {
                s: features(
                    method,
                    inp,
                    p["latlon"],
                    embedder,
                    random_embedder,
                    {k: v[s] for k, v in feats.items()},
                )
                for s, p in pts.items()
            }
            cache.save(method, inp, feats[(method, inp)])
        if "probes" in stages:
            probe_out, comp, _, fitted = probe_rows(tasks, labels, feats, blocks, n_boot, seed)
            rows += probe_out
            comparisons += comp
            heads, heads_record = select_heads(tasks, labels, feats, blocks, seed, fitted)
            rows += _head_rows(heads, tasks, labels, feats, blocks, n_boot, seed)

        def inr(method: str, emb, split: str) -> np.ndarray:
            """INR embeddings of a split's points: the probes' features when computed."""
            done = feats.get((method, "inr"), {}).get(split)
            return done if done is not None else emb.point(pts[split]["latlon"])

        models = {"gair": embedder, "random-init": random_embedder}
        if "retrieval" in stages:
            test_ll = pts["test"]["latlon"][:1000]  # retrieval candidates
            views = render_queries(world, test_ll, embedder.config["sv"]["img_size"])
            for method, emb in models.items():
                rows += retrieval_rows(
                    method,
                    emb.street_view(views),
                    inr(method, emb, "test")[:1000],
                    blocks["test"][:1000],
                    n_boot,
                    seed,
                )
        if "nearest-street-view" in stages:
            from gair.evaluation.crossview import GALLERY_SIZE, nearest_view_rows

            splits = [s for s in ("val", "test", "unseen") if s in pts]
            nv_rows, decisions["streetview_query"] = nearest_view_rows(
                world,
                models,
                {s: pts[s] | {m: inr(m, e, s) for m, e in models.items()} for s in splits},
                n_boot,
                seed,
                min(GALLERY_SIZE, geo_gallery // 6),
            )
            rows += nv_rows
        if "geolocation" in stages:
            from gair.evaluation.geolocation_rows import geolocation_eval

            geo_rows, geo_comp, geo_decisions = geolocation_eval(
                world, embedder, random_embedder, n_boot, seed, geo_queries, geo_gallery
            )
            rows += geo_rows
            comparisons += geo_comp
            decisions |= geo_decisions
    if save_heads:
        if heads is not None:
            heads.save(run_dir)
        if decisions.get("streetview_query"):
            from gair.place_query import save_run_weight

            save_run_weight(run_dir, decisions["streetview_query"])
    result = {
        "rows": rows,
        "comparisons": comparisons,
        "heads": heads_record,
        "decisions": decisions,
        "checkpoint_hash": embedder.checkpoint_hash,
        "world": world.fingerprint,
        "settings": {
            "n_points": n_points,
            "n_test_blocks": int(len(set(blocks["test"]))),
            **sample,
            "geolocation": {"max_queries": geo_queries, "gallery_max": geo_gallery},
            "interval": "95% percentile bootstrap over the split's H3 blocks (paired for diffs)",
            "stages_run": sorted(stages),
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    write_json(run_dir / "eval.json", result)
    return result


class _FeatureCache:
    """Features of one (checkpoint, world, point sample) under ~/.cache/gair/eval, so that a rerun
    (e.g. after a crash in a later stage) skips the encoders. Written atomically; keyed by
    everything the features depend on."""

    def __init__(self, ckpt: str, world: str, n_land: int, n_train: int, seed: int):
        import os

        root = Path(os.environ.get("GAIR_CACHE", Path.home() / ".cache" / "gair")) / "eval"
        from gair import __version__

        key = f"{ckpt[:16]}-{world}-{n_land}-{n_train}-{seed}-v{__version__}-f{FEATURES_VERSION}"
        self.dir = root / key

    def _path(self, method: str, inp: str) -> Path:
        return self.dir / f"{method}__{inp.replace('+', '_')}.npz"

    def has(self, method: str, inp: str, pts: dict) -> bool:
        path = self._path(method, inp)
        if not path.is_file():
            return False
        with np.load(path) as z:
            return all(s in z and len(z[s]) == len(p["latlon"]) for s, p in pts.items())

    def load(self, method: str, inp: str) -> dict:
        with np.load(self._path(method, inp)) as z:
            return {s: z[s] for s in z.files}

    def save(self, method: str, inp: str, feats: dict) -> None:
        from gair.atomic import atomic_path

        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self._path(method, inp)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **feats)


def _head_rows(heads, tasks, labels, feats, blocks, n_boot, seed) -> list[dict]:
    """The shipped heads (what the app predicts) scored on test and unseen."""
    from gair.evaluation.probe_eval import metric_fns, scored_rows

    rows = []
    for split in [s for s in ("test", "unseen") if s in labels]:
        x = {"inr": feats[("gair", "inr")][split], "location": feats[("gair", "location")][split]}
        out = heads.predict(x)
        for task in tasks:
            y, ok = labels[split][task.name]
            if ok.sum() < 2:
                continue
            cls = task.kind == "classification"
            y_tr, ok_tr = labels["train"][task.name]
            mean = 0.0 if cls else float(np.mean(y_tr[ok_tr]))
            pred = out[task.name].argmax(-1) if cls else out[task.name]
            fns = metric_fns(task, len(task.classes) if cls else 0, mean)
            band = heads.intervals.get(task.name)
            if band is not None:  # is the val-fitted interval as good on held-out points?
                fns = fns | _interval_fns(band)
            key = (task.name, "gair-heads", heads.inputs[task.name], heads.kinds[task.name])
            rows += scored_rows(key, fns, y[ok], pred[ok], blocks[split][ok], split, n_boot, seed)
            if cls:  # are the probabilities the app shows honest on held-out points?
                probs = out[task.name]
                rows += scored_rows(
                    key,
                    _calibration_fns(),
                    y[ok],
                    probs[ok],
                    blocks[split][ok],
                    split,
                    n_boot,
                    seed,
                )
    return rows


def _calibration_fns() -> dict:
    """ECE and log loss of a classification head's probabilities (y_pred: [N, C])."""
    from gair.evaluation.stats import calibration_metrics

    return {
        name: (lambda y_true, y_pred, name=name: calibration_metrics(y_true, y_pred)[name])
        for name in ("ece", "log_loss")
    }


def _interval_fns(band) -> dict:
    """Metrics of a head's prediction interval: the share of truths inside it (the coverage
    the val split promised: `band.level`) and its median width."""
    from gair.intervals import coverage

    level = round(band.level * 100)

    def width(y_true, y_pred):
        lo, hi = band.bounds(y_pred)
        return float(np.median(hi - lo))

    return {
        f"interval{level}_coverage": lambda y_true, y_pred: coverage(band, y_pred, y_true),
        f"interval{level}_median_width": width,
    }
