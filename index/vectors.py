"""FAISS vector indexes over int8 codes, re-ranked with the stored float16 vectors: cosine =
inner product on L2-normalised vectors, recall@10 against exact float32 search measured at
build time.

| vectors          | FAISS factory (search codes)                          | then                      |
| < 256            | Flat (exact float32; too few to train a quantiser)    | -                         |
| < 200k           | SQ8 (exhaustive scan of int8 codes, d bytes/vec)      | re-rank top 200 (float16) |
| >= 200k, fits    | IVF{4 sqrt N}_HNSW32,SQ8 (d bytes/vec)                | re-rank top 200 (float16) |
| larger still     | IVF{16 sqrt N}_HNSW32,PQ{d/8} (d/8 bytes/vec)         | re-rank top 200 (float16) |

The index keeps its vectors twice, both compact: FAISS's int8 codes (SQ8: per-dimension
min/max, in memory, d bytes) to find a shortlist, and the unit vectors as float16 in
`{table}.npy` (2d bytes, memory-mapped; only the shortlisted rows are read) to re-score it.
Neighbouring grid cells have near-identical embeddings, so a top 10 is a set of near-ties
(the 10th and 11th cosine ~5e-4 apart) that int8 alone (error ~6e-3) cannot order: on the
demo index SQ8 alone gives recall@10 0.88, its top 200 re-ranked in float16 0.96 (float16 alone:
0.98, the ceiling of any float16 store). `Searcher` does the two steps; `tune_nprobe` picks
the IVF probes for recall >= 0.95 of the whole search, near-ties counted (`recall_against`: on a
flat field, such as the ice sheets at h3:6, no float16 store can tell which of many near-equal
cells are the float32 top 10); the manifest records both recalls.

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
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from gair.atomic import atomic_path

EXACT_LIMIT = 200_000  # an int8 scan is ~7 ms per 1e5 vectors on one core: bounded latency
FLAT_BELOW = 256  # fewer vectors: exact float32 (a quantiser needs a sample to train on)
RERANK = 200  # shortlist re-scored with the stored float16 vectors
STORED_DTYPE = np.float16
MEMORY_BUDGET = 16 * 2**30  # bytes of vector codes an IVF index may hold
TRAIN_SIZE = 200_000
MIN_POINTS_PER_LIST = 39  # FAISS's k-means warns below this


def choose_factory(
    n: int, dim: int, train_size: int = TRAIN_SIZE, memory_budget: int = MEMORY_BUDGET
) -> str:
    """FAISS factory string for n vectors of size dim, trained on `train_size` of them."""
    if n < FLAT_BELOW:  # including n = 0
        return "Flat"
    if n < EXACT_LIMIT:
        return "SQ8"
    most = max(16, min(n, train_size) // MIN_POINTS_PER_LIST)
    if n * dim <= memory_budget:
        return f"IVF{_pow2(4 * math.sqrt(n), most)}_HNSW32,SQ8"
    m = max(1, dim // 8)
    while dim % m:
        m -= 1
    return f"IVF{_pow2(16 * math.sqrt(n), most)}_HNSW32,PQ{m}"


def rerank_size(factory: str) -> int:
    """How many FAISS hits the stored float16 vectors re-score (0: FAISS is exact)."""
    return 0 if factory == "Flat" else RERANK


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


GATHER_ROWS = 4096  # rows gathered per memory mapping (`StoredVectors`)


class StoredVectors:
    """An index's stored vectors [N, E] (`{table}.npy`), read on demand: each read maps the
    file, copies the rows asked for and unmaps it, so the process keeps none of it resident
    (a long-lived memory map would: every page a search or a heatmap touched counts in the
    process's memory, up to the whole 2 GB of 4 M float16 vectors). The OS page cache still
    serves repeated reads. Indexing: `vecs[rows]` (int, slice, array of ints) -> array copy."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        probe = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = probe.shape, probe.dtype, probe.ndim
        del probe

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, (int, np.integer, slice)):
            mapped = np.load(self.path, mmap_mode="r")
            try:
                return np.array(mapped[rows])
            finally:
                del mapped
        rows = np.asarray(rows, np.int64)
        order = np.argsort(rows, kind="stable")  # ascending: sequential reads
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        # a few thousand rows per mapping: scattered rows each fault in their own pages (and
        # the kernel's read-around), so one mapping for all would hold hundreds of MB at once
        for start in range(0, len(rows), GATHER_ROWS):
            part = order[start : start + GATHER_ROWS]
            mapped = np.load(self.path, mmap_mode="r")
            try:
                out[part] = mapped[rows[part]]
            finally:
                del mapped
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)


class Searcher:
    """Top-k inner-product search: FAISS's top `rerank` (int8 codes) re-scored with the stored
    vectors [N, E] (float16, memory-mapped), or FAISS alone when `rerank` is 0 (exact Flat).
    Scores are the stored vectors' cosines, so they do not depend on the FAISS code."""

    def __init__(self, index, stored: np.ndarray, rerank: int):
        self.index, self.stored, self.rerank = index, stored, int(rerank)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores [Q, k] float32, ids [Q, k] int64) for float32 queries [Q, E], best first;
        ids -1 (score -inf) where fewer than k vectors exist."""
        queries = np.ascontiguousarray(queries, np.float32)
        n = self.index.ntotal
        if not self.rerank or n == 0:
            return self.index.search(queries, k)
        scores, ids = self.index.search(queries, min(n, max(k, self.rerank)))
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        for qi, (q, row) in enumerate(zip(queries, ids)):
            row = np.sort(row[row >= 0])  # ascending rows: sequential reads
            exact = np.asarray(self.stored[row], np.float32) @ q
            best = np.argsort(-exact, kind="stable")[:k]
            out_s[qi, : len(best)] = exact[best]
            out_i[qi, : len(best)] = row[best]
        return out_s, out_i


TIE_TOLERANCE = 1e-4  # cosine; twice the float16 store's own largest cosine error (5.7e-5)


@dataclass
class Truth:
    """Queries drawn from the data [Q, D], their exact float32 top k `ids` [Q, k], and the
    exact cosine of each query's k-th neighbour `kth` [Q]."""

    queries: np.ndarray
    ids: np.ndarray
    kth: np.ndarray


def exact_truth(vectors: np.ndarray, k: int = 10, n_queries: int = 1000, seed: int = 0) -> Truth:
    """The exact inner-product top k of `n_queries` of the data's own vectors (`faiss.knn`,
    which scans `vectors` in place: no copy of a 4 M-vector table)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    rng = np.random.default_rng(seed)
    queries = vectors[rng.choice(n, size=min(n, n_queries), replace=False)]
    scores, ids = faiss.knn(queries, vectors, min(k, n), metric=faiss.METRIC_INNER_PRODUCT)
    return Truth(queries, ids, scores[:, -1])


def recall_against(
    searcher, truth: Truth, vectors: np.ndarray | None = None, tol: float = TIE_TOLERANCE
) -> tuple[float, float]:
    """(recall, recall with near-ties) of `searcher` against the exact top k. Recall: the share
    of the exact top k found. With near-ties (needs the float32 `vectors`): the share of found
    vectors whose exact cosine is within `tol` of the exact k-th's. Where the embedding field
    is flat, which 10 of many near-equal cells are "the" top 10 is decided by differences no
    float16 store keeps, and any of them is as good an answer; near-ties count those (the
    demo's h3:6 cells south of 8 S, a third of them Antarctic ice: exact float16 search finds
    0.84 of the float32 top 10, and 0.999 within 1e-4). Without `vectors` both numbers are
    the plain recall."""
    k = truth.ids.shape[1]
    _, found = searcher.search(truth.queries, k)
    hits = sum(len(set(t) & set(f)) for t, f in zip(truth.ids, found))
    recall = hits / truth.ids.size
    if vectors is None:
        return recall, recall
    valid = found >= 0
    rows = np.asarray(vectors[np.where(valid, found, 0).ravel()], np.float32).reshape(
        *found.shape, -1
    )
    cos = np.einsum("qd,qkd->qk", truth.queries, rows)
    near = valid & (cos >= truth.kth[:, None] - tol)
    return recall, float(near.sum() / truth.ids.size)


def recall_at_k(
    searcher, vectors: np.ndarray, k: int = 10, n_queries: int = 1000, seed: int = 0
) -> float:
    """Recall@k of `searcher` (a `Searcher` or a FAISS index) against exact float32
    inner-product search, on queries drawn from the data (1.0 without vectors)."""
    if len(vectors) == 0 or k < 1:
        return 1.0
    return recall_against(searcher, exact_truth(vectors, k, n_queries, seed))[0]


def tune_nprobe(
    searcher, vectors: np.ndarray, target: float = 0.95, k: int = 10
) -> tuple[int | None, float, float]:
    """Smallest nprobe (doubling) for which the whole search (FAISS + re-rank) finds `target`
    of the exact top k, near-ties counted (`recall_against`); returns (nprobe, recall, recall
    with near-ties), nprobe None for indexes without inverted lists. The exact top k is
    computed once, not per nprobe tried."""
    if not isinstance(searcher, Searcher):  # a bare FAISS index: scored as it is
        searcher = Searcher(searcher, None, 0)
    index = searcher.index
    if len(vectors) == 0 or k < 1:
        return None, 1.0, 1.0
    truth = exact_truth(vectors, k)
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        return None, *recall_against(searcher, truth, vectors)
    nprobe, recalls = 8, (0.0, 0.0)
    while nprobe <= ivf.nlist:
        set_search_params(index, nprobe=nprobe, ef_search=max(64, nprobe * 2))
        recalls = recall_against(searcher, truth, vectors)
        if recalls[1] >= target:
            break
        nprobe *= 2
    return min(nprobe, ivf.nlist), *recalls


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
