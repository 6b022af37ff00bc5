"""`gair app`: serve the map app (registered through the "gair.commands" entry points)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MAIN = Path(__file__).resolve().parent / "main.py"


def register(sub) -> None:
    p = sub.add_parser("app", help="serve the map app (Streamlit) on a port")
    p.add_argument(
        "--index",
        default=os.environ.get("GAIR_INDEX", "data/index"),
        help="index dir (default data/index)",
    )
    p.add_argument(
        "--world",
        default=None,
        help="the index's imagery: a demo world dir or the rasters' new place (default: the "
        "index manifest's)",
    )
    p.add_argument("--checkpoint", default=None, help="run dir (default: the index manifest's)")
    p.add_argument(
        "--device",
        default=os.environ.get("GAIR_DEVICE", "auto"),
        choices=["auto", "cpu", "cuda"],
        help="where the model runs: auto = CUDA when torch sees a GPU, else the CPU "
        "(default: env GAIR_DEVICE, else auto)",
    )
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="localhost", help="bind address (0.0.0.0 to serve others)")
    p.set_defaults(func=run)


def command(args) -> list[str]:
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(MAIN),
        "--server.port", str(args.port), "--server.address", args.address,
        "--server.headless", "true", "--server.enableStaticServing", "true",
        "--browser.gatherUsageStats", "false",
        "--", "--index", str(args.index),
    ]  # fmt: skip
    if args.world:
        cmd += ["--world", str(args.world)]
    if args.checkpoint:
        cmd += ["--checkpoint", str(args.checkpoint)]
    device = getattr(args, "device", "auto") or "auto"
    if device != "auto":
        cmd += ["--device", str(device)]
    return cmd


def run(args) -> int:
    if not (Path(args.index) / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no index at {args.index}: build it with `make index` or `gair index build --out {args.index}`"
        )
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["GAIR_DEVICE"] = str(getattr(args, "device", "auto") or "auto")  # the flag wins over env
    print(f"serving the app on http://{args.address}:{args.port} (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(command(args), env=env)
    except KeyboardInterrupt:
        return 0
