"""The "your own data" path at a city's scale, timed step by step (docs/OWN-DATA.md):
a 12-band Sentinel-2-like mosaic of two UTM zones (10 m), a ViT-B-sized checkpoint in the
official release's layout (random weights: the timings are the real model's), a CSV of photos,
then `gair import-official`, `gair index build --source ... --aoi ... --grid h3:9
--gallery-csv ...` over a 20 x 20 km AOI, and queries. Writes benchmarks/results/own_imagery.json.

    python -m benchmarks.bench_own_imagery [--km 20] [--grid h3:9] [--photos 200] [--small]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result

LAT_C, LON_C = 45.0, 6.0  # the UTM 31/32 boundary
KM_PER_DEG = 111.19492664455873


def _timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - t, 2)


def main(argv=None) -> int:
    from PIL import Image

    from tests import raster_fixtures as fx

    ap = argparse.ArgumentParser()
    ap.add_argument("--km", type=float, default=20.0, help="AOI side in km")
    ap.add_argument("--grid", default="h3:9")
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--small", action="store_true", help="a small model (a quick check)")
    args = ap.parse_args(argv)
    gair = str(Path(sys.executable).with_name("gair"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dlat = (args.km / 2 + 3) / KM_PER_DEG  # the imagery reaches 3 km past the AOI
        dlon = dlat / np.cos(np.radians(LAT_C))
        lat_range = (LAT_C - dlat, LAT_C + dlat)
        t = time.perf_counter()
        (tmp / "s2").mkdir()
        fx.write_utm_raster(
            tmp / "s2/zone31.tif", 32631, (LON_C - dlon, LON_C + 0.004), 0.0, None, lat_range, 10.0
        )
        fx.write_utm_raster(
            tmp / "s2/zone32.tif", 32632, (LON_C - 0.004, LON_C + dlon), 1000.0,
            {"BOA_ADD_OFFSET": "-1000"}, lat_range, 10.0,
        )  # fmt: skip
        write_s = time.perf_counter() - t
        rng = np.random.default_rng(0)
        rows = []
        (tmp / "photos").mkdir()
        for i in range(args.photos):
            img = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
            Image.fromarray(img).save(tmp / f"photos/p{i:04d}.jpg", quality=85)
            lat = LAT_C + rng.uniform(-0.4, 0.4) * args.km / KM_PER_DEG
            lon = LON_C + rng.uniform(-0.4, 0.4) * args.km / KM_PER_DEG / np.cos(np.radians(lat))
            rows.append(f"{lon:.6f},{lat:.6f},photos/p{i:04d}.jpg")
        (tmp / "photos.csv").write_text("lon,lat,path\n" + "\n".join(rows) + "\n")
        half_lat = args.km / 2 / KM_PER_DEG
        half_lon = half_lat / np.cos(np.radians(LAT_C))
        ring = [
            [LON_C - half_lon, LAT_C - half_lat], [LON_C + half_lon, LAT_C - half_lat],
            [LON_C + half_lon, LAT_C + half_lat], [LON_C - half_lon, LAT_C + half_lat],
        ]  # fmt: skip
        aoi = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
        (tmp / "aoi.geojson").write_text(json.dumps(aoi))

        sizes = {} if args.small else dict(
            rs_width=768, rs_depth=12, sv_width=768, sv_depth=12, loc_hidden=1024, n_freq=256
        )  # fmt: skip
        from tests.official_reference import (
            add_gair_model_extras,
            make_release_state,
            save_release_checkpoint,
        )

        state = add_gair_model_extras(make_release_state(sigmas=(1.0, 2.0, 4.0), seed=5, **sizes))
        save_release_checkpoint(state, tmp / "gair_release.pth")
        del state
        import_s = _timed(
            [gair, "import-official", str(tmp / "gair_release.pth"), "--out", str(tmp / "run")]
        )
        build = [
            gair,
            "index",
            "build",
            "--checkpoint",
            str(tmp / "run"),
            "--source",
            str(tmp / "s2"),
        ]
        build += ["--aoi", str(tmp / "aoi.geojson"), "--grid", args.grid]
        build += ["--gallery-csv", str(tmp / "photos.csv"), "--out", str(tmp / "index")]
        build_s = _timed(build)
        manifest = json.loads((tmp / "index/manifest.json").read_text())
        query = [gair, "index", "query", "--index", str(tmp / "index"), "--json"]
        point_s = _timed(query + ["--lat", str(LAT_C + 0.01), "--lon", str(LON_C + 0.01)])
        photo_s = _timed(query + ["--sv-image", str(tmp / "photos/p0000.jpg")])
        mosaic_mb = sum(p.stat().st_size for p in (tmp / "s2").iterdir()) / 2**20
    result = {
        "command": "python -m benchmarks.bench_own_imagery " + " ".join(argv or sys.argv[1:]),
        "aoi_km": args.km,
        "grid": args.grid,
        "model": "small" if args.small else "ViT-B sized (official release layout)",
        "mosaic": {
            "files": 2,
            "gsd_m": 10.0,
            "megabytes": round(mosaic_mb, 1),
            "write_s": round(write_s, 1),
        },
        "photos": args.photos,
        "seconds": {
            "import_official": import_s,
            "index_build": build_s,
            "query_point_cli": point_s,
            "query_photo_cli": photo_s,
        },
        "index": {
            "cells": manifest["cells"]["count"],
            "coverage": {
                k: v for k, v in manifest["coverage"].items() if k != "examples_without_imagery"
            },
            "streetviews": manifest["streetviews"]["count"],
            "encoder_passes_per_point": round(manifest["encoder_passes_per_point"], 4),
            "build_seconds_in_manifest": manifest["build_seconds"],
        },
    }
    print(json.dumps(result, indent=2))
    write_result("own_imagery" + ("-small" if args.small else ""), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
