"""Shared helpers for benchmarks: machine description and atomic JSON results."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from gair.atomic import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_result(name: str, result: dict) -> Path:
    """Write benchmarks/results/NAME.json (or NAME itself when it ends in .json: a path)."""
    path = Path(name) if name.endswith(".json") else RESULTS / f"{name}.json"
    name = path.stem
    write_json(
        path,
        {
            "benchmark": name,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            **result,
        },
    )
    print(f"wrote {path}")
    return path


def timeit(fn, repeat: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of `repeat` calls of fn after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times
