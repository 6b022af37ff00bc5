"""The map app, server side: click-to-full-result latency, cold start, memory, concurrency.

    python -m benchmarks.bench_app [--index data/index] [--clicks 60] [--sessions 5]

Drives the same functions the Streamlit panels call (`app.logic.click_result`, then the map
layers through streamlit-folium's own serialisation), over random land clicks on the demo
index (h3:4, land only). Targets (docs/DESIGN.md): p95 <= 250 ms per click on 2 CPU cores,
cold start <= 10 s, resident memory <= 2 GiB. Writes benchmarks/results/app.json.
"""

from __future__ import annotations

import os

# the app's serving configuration (Makefile `serve`, Procfile): one BLAS thread per request
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_P95_MS = 250.0
TARGET_COLD_S = 10.0
TARGET_RSS_GIB = 2.0
LARGE_CELLS = 1_000_000  # from here on (issue 17): p95 <= 400 ms, RSS <= 3 GiB
LARGE_TARGETS = (400.0, 3.0)


def rss_gib() -> tuple[float, float]:
    """(current, peak) resident set size of this process, GiB."""
    cur = peak = 0.0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 2**20
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 2**20
    return cur, peak


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q))


def cold_start(index: str) -> dict:
    """Fresh processes: (1) the library path: imports + open world/index + the overlay lookup
    (what the first page needs), then the model load the app runs in the background after its
    first page, then the first click; (2) the whole Streamlit script's first run (AppTest) and
    a click right after it (which waits for the model)."""
    code = f"""
import time, json, os
t0 = time.perf_counter()
from app.resources import Settings, open_resources, configure_threads
from app import logic, maps
import streamlit, streamlit_folium  # what the page imports too
maps._index_tile_providers()
import leafmap.foliumap
t1 = time.perf_counter()
configure_threads()
res = open_resources(Settings(index={index!r}))
t2 = time.perf_counter()
res.warm_heatmap()
t3 = time.perf_counter()
res.index.embedder.load()  # the app does this in the background after its first page
res.heads
t4 = time.perf_counter()
lat, lon = res.cell_latlon[len(res.cell_latlon) // 3]
logic.click_result(res, float(lat), float(lon), 8)
t5 = time.perf_counter()
print(json.dumps({{"imports_s": t1 - t0, "open_world_index_s": t2 - t1, "overlay_lookup_s": t3 - t2,
                   "ready_s": t3 - t0, "model_load_s": t4 - t3, "model_ready_s": t4 - t0,
                   "first_click_s": t5 - t4}}))
"""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    lib = json.loads(out.stdout.strip().splitlines()[-1])
    page_code = f"""
import time, json, os
os.environ["GAIR_INDEX"] = {index!r}
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(REPO / "app" / "main.py")!r}, default_timeout=300)
at.run()
t1 = time.perf_counter()
at.session_state["point"] = (48.85, 2.35)
at.run()
t2 = time.perf_counter()
print(json.dumps({{"first_page_s": t1 - t0, "first_click_page_s": t2 - t1, "exceptions": len(at.exception)}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", page_code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    page = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in {**lib, **page}.items()}


def random_land_clicks(res, n: int, seed: int) -> np.ndarray:
    """Random points on land near the index's land cells (jittered inside a cell)."""
    rng = np.random.default_rng(seed)
    cells = res.cells
    land = cells[cells["is_land"].astype(bool)] if "is_land" in cells else cells
    ll = land[["lat", "lon"]].to_numpy()[rng.integers(len(land), size=n)]
    ll = ll + rng.uniform(-0.1, 0.1, size=ll.shape)
    ll[:, 0] = np.clip(ll[:, 0], -89.9, 89.9)
    ll[:, 1] = (ll[:, 1] + 180.0) % 360.0 - 180.0
    return ll


def map_layers_ms(res, result, point) -> float:
    """Server-side cost of the map update for a click: the per-click folium layers serialised
    exactly as st_folium does it (the component itself is mocked)."""
    from unittest import mock

    import streamlit_folium

    from app import maps

    t = time.perf_counter()
    m = maps.base_map(res.source if res.source is not None else res.world)
    layers = maps.query_layers(result, point=point, overlay=result["overlay"])
    with mock.patch.object(streamlit_folium, "_component_func", lambda **kw: kw.get("default")):
        streamlit_folium.st_folium(
            m,
            key="map",
            feature_group_to_add=layers,
            layer_control=maps.layer_control(),
            returned_objects=["last_clicked"],
        )
    return (time.perf_counter() - t) * 1000.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--index", default=os.environ.get("GAIR_INDEX", "data/index"))
    p.add_argument("--clicks", type=int, default=60)
    p.add_argument("--sessions", type=int, default=5)
    p.add_argument("--clicks-per-session", type=int, default=12)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--no-cold", action="store_true", help="skip the cold-start subprocesses")
    p.add_argument("--out", default="app", help="result name (benchmarks/results/OUT.json)")
    args = p.parse_args(argv)
    if not (Path(args.index) / "manifest.json").is_file():
        print(
            f"no index at {args.index}: build it first (`make demo` or `gair index build ...`)",
            file=sys.stderr,
        )
        return 2

    from app import logic
    from app.resources import Settings, configure_threads, open_resources

    cold = None if args.no_cold else cold_start(args.index)
    if cold:
        print(
            f"cold start: ready in {cold['ready_s']:.2f} s, first page {cold['first_page_s']:.2f} s, "
            f"model loaded at {cold['model_ready_s']:.2f} s, first click page "
            f"{cold['first_click_page_s']:.2f} s after the first page",
            flush=True,
        )

    configure_threads()
    res = open_resources(Settings(index=args.index))
    target_ms, target_gib = (
        LARGE_TARGETS if len(res.cells) >= LARGE_CELLS else (TARGET_P95_MS, TARGET_RSS_GIB)
    )
    res.warm_heatmap()
    load_before = os.getloadavg()

    # -- single session: random land clicks -------------------------------------------------
    clicks = random_land_clicks(res, args.clicks + 3, seed=0)
    for lat, lon in clicks[:3]:  # warm-up
        logic.click_result(res, lat, lon, args.k)
    lat_ms, stages, layer_ms = [], [], []
    for lat, lon in clicks[3:]:
        t = time.perf_counter()
        r = logic.click_result(res, lat, lon, args.k)
        lat_ms.append((time.perf_counter() - t) * 1000.0)
        stages.append(r["timings_ms"])
        layer_ms.append(map_layers_ms(res, r, (lat, lon)))
    stage_p50 = {k: round(pct([s[k] for s in stages], 50), 1) for k in stages[0]}
    single = {
        "clicks": len(lat_ms),
        "p50_ms": round(pct(lat_ms, 50), 1),
        "p95_ms": round(pct(lat_ms, 95), 1),
        "mean_ms": round(float(np.mean(lat_ms)), 1),
        "max_ms": round(float(np.max(lat_ms)), 1),
        "stage_p50_ms": stage_p50,
        "map_layers_p50_ms": round(pct(layer_ms, 50), 1),
        "map_layers_p95_ms": round(pct(layer_ms, 95), 1),
        "click_plus_map_p95_ms": round(pct(np.add(lat_ms, layer_ms), 95), 1),
        "target_p95_ms": target_ms,
        "meets_target": pct(lat_ms, 95) <= target_ms,
    }
    print(
        f"single session: p50 {single['p50_ms']} ms, p95 {single['p95_ms']} ms (+ map layers p50 {single['map_layers_p50_ms']} ms)",
        flush=True,
    )

    # -- concurrent sessions ------------------------------------------------------------------
    reference = {}
    points = random_land_clicks(res, args.sessions * args.clicks_per_session, seed=1)
    for i in range(
        0, len(points), args.clicks_per_session
    ):  # one reference per session for cross-talk checks
        reference[i] = logic.click_result(res, *points[i], args.k, thumbnails=False, heatmap=False)[
            "embedding"
        ]
    errors, bad, conc_ms = [], [], []
    lock = threading.Lock()
    barrier = threading.Barrier(args.sessions)

    def session(s: int) -> None:
        barrier.wait()
        for j in range(args.clicks_per_session):
            i = s * args.clicks_per_session + j
            lat, lon = points[i]
            try:
                t = time.perf_counter()
                r = logic.click_result(res, lat, lon, args.k)
                dt = (time.perf_counter() - t) * 1000.0
                ok = (
                    abs(r["query"]["lat"] - lat) < 1e-9
                    and len(r["places"]) == args.k
                    and len(r["thumbnails"]) == min(args.k, logic.THUMBNAILS_MAX)
                    and r["overlay"]["png"][:4] == b"\x89PNG"
                    and (i not in reference or np.allclose(r["embedding"], reference[i], atol=1e-5))
                )
                with lock:
                    conc_ms.append(dt)
                    if not ok:
                        bad.append(i)
            except Exception as err:  # counted, reported
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=session, args=(s,)) for s in range(args.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    concurrent = {
        "sessions": args.sessions,
        "clicks": len(conc_ms),
        "errors": errors[:5],
        "n_errors": len(errors),
        "wrong_results": len(bad),
        "p50_ms": round(pct(conc_ms, 50), 1) if conc_ms else None,
        "p95_ms": round(pct(conc_ms, 95), 1) if conc_ms else None,
        "throughput_clicks_per_s": round(len(conc_ms) / wall, 2),
        "all_ok": not errors
        and not bad
        and len(conc_ms) == args.sessions * args.clicks_per_session,
    }
    print(
        f"{args.sessions} concurrent sessions: {concurrent['clicks']} clicks, errors {len(errors)}, wrong {len(bad)}, p95 {concurrent['p95_ms']} ms",
        flush=True,
    )

    cur, peak = rss_gib()
    memory = {
        "rss_gib": round(cur, 3),
        "peak_rss_gib": round(peak, 3),
        "target_gib": target_gib,
        "meets_target": peak <= target_gib,
    }
    print(f"memory: rss {cur:.2f} GiB, peak {peak:.2f} GiB", flush=True)

    from benchmarks.common import write_result

    m = res.manifest
    write_result(
        args.out,
        {
            "index": {
                "dir": str(args.index),
                "grid": m["grid"],
                "cells": len(res.cells),
                "gallery": len(res.gallery),
                "dim": m["dim"],
                "factory": m["cells"]["factory"],
                "nprobe": m["cells"].get("nprobe"),
                "rerank": m["cells"].get("rerank"),
                "recall_at_10": m["cells"].get("recall_at_10"),
                "jittered_from": m.get("jittered_from"),
            },
            "checkpoint": str(res.run_dir),
            "k": args.k,
            "threads": {
                "torch": int(__import__("torch").get_num_threads()),
                "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            },
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "cold_start": cold
            and {
                **cold,
                "target_s": TARGET_COLD_S,
                "meets_target": cold["first_page_s"] <= TARGET_COLD_S,
            },
            "click": single,
            "concurrent": concurrent,
            "memory": memory,
        },
    )
    return 0 if concurrent["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
