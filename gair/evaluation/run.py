"""`gair eval`: probes for five tasks, cross-view retrieval and geolocalization on the demo
world's held-out regions, against baselines, as a tidy table (rows of task/method/metric)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from gair import build_model, save_model
from gair.atomic import write_json
from gair.embed import Embedder
from gair.evaluation import probes as P
from gair.evaluation.features import method_features, render_queries
from gair.evaluation.report import markdown_table, read_eval  # noqa: F401  (re-exported)
from gair.evaluation.tasks import default_tasks
from gair.geo import haversine_km
from gair.geolocate import geographic_median, locate
from gair.heads import Heads

log = logging.getLogger(__name__)

PROBE_METHODS = ("gair", "location-only", "center-pool", "bilinear", "random-init")
WITHIN_KM = (25, 200, 750, 2500)
GALLERY_MAX = 20000  # candidate coordinates for geolocalization (all splits, as GeoCLIP's gallery)


def sample_split(world, split: str, n: int, seed: int) -> np.ndarray:
    sv = world.streetviews
    latlon = sv.loc[sv["split"] == split, ["lat", "lon"]].to_numpy(np.float64)
    if len(latlon) == 0:
        raise ValueError(f"the world has no street-view locations in split {split!r}")
    rng = np.random.default_rng(seed)
    return latlon[np.sort(rng.choice(len(latlon), size=min(n, len(latlon)), replace=False))]


def _row(task, method, metric, values, n):
    values = np.asarray(values, dtype=np.float64)
    return {
        "task": task,
        "method": method,
        "metric": metric,
        "higher_is_better": P.HIGHER_IS_BETTER.get(metric, not metric.startswith("median")),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "n": int(n),
    }


def retrieval_rows(method, sv_emb, place_emb) -> list[dict]:
    """SV -> place and place -> SV recall@k among the test candidates (row i matches i)."""
    rows, n = [], len(sv_emb)
    sims = sv_emb @ place_emb.T
    for name, s in (("sv->place", sims), ("place->sv", sims.T)):
        rank = (s > s[np.arange(n), np.arange(n)][:, None]).sum(1)  # 0 = correct item first
        for k in (1, 5, 10):
            rows.append(_row(name, method, f"R@{k}", [(rank < k).mean()], n))
    return rows


def geolocation_rows(
    method, predicted: np.ndarray, truth: np.ndarray, task: str = "geolocalization"
) -> list[dict]:
    err = haversine_km(predicted, truth)
    rows = [_row(task, method, "median_km", [np.median(err)], len(err))]
    rows += [
        _row(task, method, f"within_{km}km", [(err <= km).mean()], len(err)) for km in WITHIN_KM
    ]
    return rows


def geolocate(
    embedder: Embedder, sv_emb: np.ndarray, gallery: np.ndarray, gallery_emb
) -> np.ndarray:
    """The product's answer: the posterior geometric median over the gallery's location
    embeddings `gallery_emb` at the model's training temperature (`gair.geolocate.locate`)."""
    return locate(sv_emb, gallery_emb, gallery, embedder.logit_scale).numpy()


def geolocate_best_entry(sv_emb: np.ndarray, gallery: np.ndarray, gallery_emb) -> np.ndarray:
    """The posterior's mode: the gallery coordinate with the best location-embedding score."""
    return gallery[np.argmax(sv_emb @ gallery_emb.T, axis=1)]


def geolocate_xview(embedder: Embedder, sv_emb: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cross-view geolocation, as the app's search by street view: each view's answer is the
    gallery coordinate whose RS-INR embedding (`Embedder.point`) is most similar."""
    return gallery[np.argmax(sv_emb @ embedder.point(gallery).T, axis=1)]


def _random_init_run(config: dict, tmp: Path) -> Path:
    torch.manual_seed(0)
    return save_model(build_model(config), tmp / "random-init")


def evaluate(
    run_dir: str | Path,
    world,
    n_train: int = 2000,
    n_test: int = 1000,
    seeds: int = 3,
    probes: tuple[str, ...] = ("linear", "mlp"),
    save_heads: bool = True,
) -> dict:
    """Evaluate a run dir; writes eval.json (and heads) into it. Returns {"rows": [...], ...}."""
    run_dir = Path(run_dir)
    if seeds < 1 or n_train < 10 or n_test < 10:
        raise ValueError(
            f"need seeds >= 1, n_train >= 10, n_test >= 10; got {seeds}, {n_train}, {n_test}"
        )
    embedder = Embedder(run_dir, world)
    train_ll = sample_split(world, "train", n_train, seed=0)
    test_ll = sample_split(world, "test", n_test, seed=1)
    from gair.world.world import IGBP_CLASSES

    continents = sorted(
        set(world.labels(train_ll)["continent"]) | set(world.labels(test_ll)["continent"])
    )
    tasks = default_tasks(IGBP_CLASSES, continents)
    train_lab, test_lab = world.labels(train_ll), world.labels(test_ll)
    rows: list[dict] = []
    best_heads: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        random_embedder = Embedder(_random_init_run(embedder.config, Path(tmp)), world)
        for method in PROBE_METHODS:
            emb = random_embedder if method == "random-init" else embedder
            log.info("features: %s", method)
            x_tr, x_te = (
                method_features(method, emb, train_ll),
                method_features(method, emb, test_ll),
            )
            for task in tasks:
                y_tr, ok_tr = task.encode(train_lab[task.name])
                y_te, ok_te = task.encode(test_lab[task.name])
                if ok_tr.sum() < 2 or ok_te.sum() < 2:
                    raise ValueError(
                        f"task {task.name}: too few labelled points ({ok_tr.sum()} train, {ok_te.sum()} test)"
                    )
                n_out = 1 if task.kind == "regression" else len(task.classes)
                for probe in probes:
                    scores: dict[str, list[float]] = {}
                    for seed in range(seeds):
                        rng = np.random.default_rng(seed)
                        pick = np.flatnonzero(ok_tr)
                        pick = (
                            rng.choice(pick, size=max(1, int(0.8 * len(pick))), replace=False)
                            if seeds > 1
                            else pick
                        )
                        model = P.fit_probe(x_tr[pick], y_tr[pick], task.kind, n_out, probe, seed)
                        pred = P.predict(model, x_te[ok_te], task.kind)
                        for metric, value in P.score(task.kind, y_te[ok_te], pred).items():
                            scores.setdefault(metric, []).append(value)
                    for metric, values in scores.items():
                        rows.append(
                            _row(task.name, method, metric, values, ok_te.sum()) | {"probe": probe}
                        )
                    if method == "gair":
                        main = "r2" if task.kind == "regression" else "accuracy"
                        mean = float(np.mean(scores[main]))
                        if task.name not in best_heads or mean > best_heads[task.name][0]:
                            best_heads[task.name] = (mean, probe)
        for task in tasks:  # the constant predictor: training mean / majority class
            y_tr, ok_tr = task.encode(train_lab[task.name])
            y_te, ok_te = task.encode(test_lab[task.name])
            const = (
                y_tr[ok_tr].mean()
                if task.kind == "regression"
                else np.bincount(y_tr[ok_tr]).argmax()
            )
            for metric, value in P.score(
                task.kind, y_te[ok_te], np.full(ok_te.sum(), const)
            ).items():
                rows.append(
                    _row(task.name, "mean-predictor", metric, [value], ok_te.sum())
                    | {"probe": "constant"}
                )

        px = embedder.config["sv"]["img_size"]
        views = render_queries(world, test_ll, px)
        gallery = world.streetviews[["lat", "lon"]].to_numpy(np.float64)
        gallery = gallery[np.random.default_rng(2).permutation(len(gallery))[:GALLERY_MAX]]
        for method, emb in (("gair", embedder), ("random-init", random_embedder)):
            sv_emb = emb.street_view(views)
            rows += retrieval_rows(method, sv_emb, emb.point(test_ll))
            gallery_emb = emb.location(gallery)
            rows += geolocation_rows(method, geolocate(emb, sv_emb, gallery, gallery_emb), test_ll)
            rows += geolocation_rows(
                method,
                geolocate_best_entry(sv_emb, gallery, gallery_emb),
                test_ll,
                "geolocalization-best-entry",
            )
            rows += geolocation_rows(
                method, geolocate_xview(emb, sv_emb, gallery), test_ll, "geolocalization-xview"
            )
        median_point = geographic_median(train_ll)
        rows += geolocation_rows(
            "mean-predictor", np.repeat(median_point[None], len(test_ll), 0), test_ll
        )

    if save_heads:
        heads = _fit_heads(tasks, best_heads, embedder, train_ll, train_lab)
        heads.save(run_dir)
    result = {
        "rows": rows,
        "checkpoint_hash": embedder.checkpoint_hash,
        "world": world.fingerprint,
        "settings": {
            "n_train": len(train_ll),
            "n_test": len(test_ll),
            "seeds": seeds,
            "probes": list(probes),
        },
    }
    write_json(run_dir / "eval.json", result)
    return result


def _fit_heads(tasks, best, embedder, latlon, labels) -> Heads:
    x = embedder.point(latlon)
    fitted, kinds = {}, {}
    for task in tasks:
        y, ok = task.encode(labels[task.name])
        probe = best.get(task.name, (0, "linear"))[1]
        n_out = 1 if task.kind == "regression" else len(task.classes)
        fitted[task.name] = P.fit_probe(x[ok], y[ok], task.kind, n_out, probe, seed=0)
        kinds[task.name] = probe
    return Heads(tasks, fitted, kinds)
