"""Process-wide helpers of the queries: the shared thread pool and the stage stopwatch."""

from __future__ import annotations

import threading
import time

_pool = None
_pool_lock = threading.Lock()


def _executor():
    """A small shared pool: the heatmap half of a query runs beside the street-view half."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gair-app")
        return _pool


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000.0, 2)
