"""FAISS vector indexes: the type follows N (FAISS's own guideline), cosine = inner product on
L2-normalised vectors, recall@10 against exact search measured at build time.

| vectors              | factory                                                  |
| < 200k               | Flat (exact; ~10 ms per query per 1e5 vectors, 1 core)   |
| >= 200k, fits memory | IVF{4 sqrt N}_HNSW32,SQfp16 (2d bytes/vec), else SQ8 (d) |
| larger still         | IVF{16 sqrt N}_HNSW32,PQ{d/8} (d/8 bytes/vec)            |

The code is the most precise one whose codes fit `memory_budget` (16 GiB by default: SQfp16
up to 3.3e7 vectors of 256-d). Neighbouring grid cells have near-identical embeddings, so the
top 10 are near-ties: measured at 1e6 x 256-d, SQ8 needs twice the probes of SQfp16 for
recall@10 >= 0.95 and, with the query among the data, stays below it even scanning every
list; PQ codes alone cap recall lower still, so PQ is kept for sizes nothing else fits.
The number of inverted lists is capped by the k-means training sample: FAISS wants >= 39
training points per centroid, so with the default 200k sample at most 4,096 lists (a 65,536-list
quantiser trained on 200k points has 3 points per centroid and takes hours on a CPU).

No vectors (an index without a street-view gallery) give an empty Flat index: recall 1.0
(exact search has nothing to miss), 0 bytes per vector.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import faiss
import numpy as np

from gair.atomic import atomic_path

EXACT_LIMIT = 200_000  # exact search is ~10 ms per 1e5 vectors on one core: bounded latency
MEMORY_BUDGET = 16 * 2**30  # bytes of vector codes an IVF index may hold
TRAIN_SIZE = 200_000
MIN_POINTS_PER_LIST = 39  # FAISS's k-means warns below this


def choose_factory(
    n: int, dim: int, train_size: int = TRAIN_SIZE, memory_budget: int = MEMORY_BUDGET
) -> str:
    """FAISS factory string for n vectors of size dim, trained on `train_size` of them."""
    if n < EXACT_LIMIT:  # including n = 0
        return "Flat"
    most = max(16, min(n, train_size) // MIN_POINTS_PER_LIST)
    for code, code_bytes in (("SQfp16", 2 * dim), ("SQ8", dim)):
        if n * code_bytes <= memory_budget:
            return f"IVF{_pow2(4 * math.sqrt(n), most)}_HNSW32,{code}"
    m = max(1, dim // 8)
    while dim % m:
        m -= 1
    return f"IVF{_pow2(16 * math.sqrt(n), most)}_HNSW32,PQ{m}"


def _pow2(x: float, most: int) -> int:
    """The power of two nearest x, at least 16 and at most `most` (rounded down to a power)."""
    cap = 1 << max(4, int(math.floor(math.log2(most))))
    return min(cap, 1 << max(4, round(math.log2(x))))


def configure_for_single_queries() -> None:
    """One query vector at a time (the app, the CLI): FAISS's OpenMP fan-out costs more than it
    saves on small searches and contends with concurrent sessions, so search single-threaded."""
    faiss.omp_set_num_threads(1)


def gpu_available() -> bool:
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def build_index(
    vectors: np.ndarray, factory: str | None = None, train_size: int = TRAIN_SIZE, seed: int = 0
):
    """Build an inner-product index over L2-normalised float32 vectors [N, D] (N may be 0:
    an empty index; ValueError for a factory that needs training then)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] < 1:
        raise ValueError(f"vectors must be [N, D] with D >= 1, got shape {vectors.shape}")
    n, dim = vectors.shape
    factory = factory or choose_factory(n, dim)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained and n == 0:
        raise ValueError(f"FAISS index {factory!r} needs training vectors; none were given")
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(n, size=min(n, train_size), replace=False)]
        trainer = index
        if gpu_available() and factory.startswith("IVF"):
            clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim))
            faiss.extract_index_ivf(index).clustering_index = clustering_index
        trainer.train(sample)
    index.add(vectors)
    return index


def set_search_params(index, nprobe: int | None = None, ef_search: int | None = None) -> None:
    """Tune an IVF index's nprobe (and its HNSW quantiser's efSearch); no-op for Flat."""
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        return
    if nprobe:
        ivf.nprobe = nprobe
    quantizer = faiss.downcast_index(ivf.quantizer)
    if ef_search and hasattr(quantizer, "hnsw"):
        quantizer.hnsw.efSearch = ef_search


def recall_at_k(
    index, vectors: np.ndarray, k: int = 10, n_queries: int = 1000, seed: int = 0
) -> float:
    """Recall@k of `index` against exact inner-product search, on queries drawn from the data
    (1.0 without vectors: nothing to miss)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n == 0 or k < 1:
        return 1.0
    k = min(k, n)
    rng = np.random.default_rng(seed)
    queries = vectors[rng.choice(n, size=min(n, n_queries), replace=False)]
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    hits = sum(len(set(t) & set(f)) for t, f in zip(truth, found))
    return hits / truth.size


def tune_nprobe(
    index, vectors: np.ndarray, target: float = 0.95, k: int = 10
) -> tuple[int | None, float]:
    """Smallest nprobe (doubling) reaching `target` recall@k; (None, recall) for exact indexes."""
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        return None, recall_at_k(index, vectors, k)
    nprobe, recall = 8, 0.0
    while nprobe <= ivf.nlist:
        set_search_params(index, nprobe=nprobe, ef_search=max(64, nprobe * 2))
        recall = recall_at_k(index, vectors, k)
        if recall >= target:
            break
        nprobe *= 2
    return min(nprobe, ivf.nlist), recall


def bytes_per_vector(index, n: int) -> float:
    """Serialised size of the index divided by its vector count (0.0 for no vectors)."""
    if n <= 0:
        return 0.0
    return float(faiss.serialize_index(index).nbytes) / n


def write_index(index, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def read_index(path: str | os.PathLike):
    if not Path(path).is_file():
        raise FileNotFoundError(f"FAISS index {path} is missing")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:  # FAISS reports a truncated or foreign file as RuntimeError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"FAISS index {path} cannot be read ({first[:200]})") from err
    if gpu_available():
        index = faiss.index_cpu_to_all_gpus(index)
    return index


class SearchLock:
    """FAISS CPU indexes are safe for concurrent search, GPU ones are not: serialise on GPU."""

    def __init__(self):
        self._lock = threading.Lock() if gpu_available() else None

    def __enter__(self):
        if self._lock:
            self._lock.acquire()

    def __exit__(self, *exc):
        if self._lock:
            self._lock.release()
