"""Where the app's inputs come from, and opening them once.

Configuration: `app.settings.Settings` (index, imagery, checkpoint, device; flags, env, the
index manifest). `open_resources(settings)` returns a `Resources` (RS source, index, heads,
eval, rasteriser) or raises `SetupError` whose message names the command that builds what is
missing; the app shows it instead of a traceback. Nothing here imports Streamlit: tests and the
benchmark use it as is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from app.index_source import (
    demo_world,
    manifest_kind,
    open_source,
    source_has_labels,
    source_kind,
)
from app.settings import DEFAULT_INDEX, Settings, SetupError, embedder_device  # noqa: F401
from gair import geo

log = logging.getLogger("gair.app")

REPO_ROOT = Path(__file__).resolve().parent.parent


HEAT_BLOCK = 1 << 15  # rows per int8 -> float32 block of the heatmap's matmul


def heat_codes(res) -> tuple[np.ndarray, np.ndarray]:
    """The drawn cells' vectors as int8 codes [R, E] with one scale per row [R]: v ~= scale *
    code, scale = max|v| / 127 (symmetric per row: a cosine needs no offset term)."""
    rows = res.raster.rows
    codes = np.empty((len(rows), res.index.manifest["dim"]), np.int8)
    scales = np.empty(len(rows), np.float32)
    for i in range(0, len(rows), 1 << 16):
        block = np.asarray(res.index.cell_vectors[rows[i : i + (1 << 16)]], np.float32)
        peak = np.maximum(np.abs(block).max(axis=1), 1e-12)
        codes[i : i + len(block)] = np.round(block * (127.0 / peak)[:, None]).astype(np.int8)
        scales[i : i + len(block)] = peak / 127.0
    return codes, scales


HEAT_AFTER_QUIET_S = 0.2  # the heatmap's lookup is built once the first page is drawn
LOAD_AFTER_QUIET_S = 0.75  # the model loads once no page has run for this long
LOAD_WAIT_MAX_S = 10.0  # ... or after this long in any case


@dataclass
class Resources:
    """Everything a session reads; shared by all sessions (read-only, thread-safe)."""

    settings: Settings
    world: object  # the demo `gair.world.World` (labels, rendered views), None for other sources
    index: object  # index.search.GridIndex (its embedder loads the model on first use)
    manifest: dict
    run_dir: Path
    run_config: dict
    eval_result: dict | None
    open_seconds: float
    cell_latlon: np.ndarray = field(repr=False, default=None)
    source: object = None  # the index's RS source (`gair.sources`; the World for demo indexes)
    _raster: object = field(repr=False, default=None)
    _raster_lock: threading.Lock = field(repr=False, default_factory=threading.Lock)
    _layers: dict = field(repr=False, default_factory=dict)
    _views: OrderedDict = field(repr=False, default_factory=OrderedDict)
    _layers_lock: threading.RLock = field(repr=False, default_factory=threading.RLock)
    _heads: object = field(repr=False, default=None)
    _heads_loaded: bool = field(repr=False, default=False)
    _heads_lock: threading.Lock = field(repr=False, default_factory=threading.Lock)
    _warm_started: bool = field(repr=False, default=False)
    _page_runs: int = field(repr=False, default=0)  # page scripts running now
    _last_page_run: float = field(repr=False, default=0.0)  # time.monotonic() of the last end
    heads_error: str | None = None  # why the run's heads are not used (None: usable or absent)
    integrity: dict = field(default_factory=lambda: {"state": "not checked", "error": None})

    def verify_in_background(self) -> None:
        """Hash every index file against its manifest in a daemon thread, once per process;
        `integrity["state"]` becomes "ok" or "damaged" (with `error`). Opening already checked
        sizes, counts, id order and FAISS agreement; this catches the rest (a flipped byte).
        It starts once the pages have gone quiet (seconds of hashing per GB: not beside a
        first page)."""
        with self._heads_lock:
            if self.integrity["state"] != "not checked":
                return
            self.integrity["state"] = "checking"

        def work():
            self._wait_for_quiet_pages()
            deadline = time.monotonic() + LOAD_WAIT_MAX_S  # and after the model's load
            while self._warm_started and not self.model_ready and time.monotonic() < deadline:
                time.sleep(0.1)
            try:
                self.index.verify()
                self.integrity.update(state="ok", error=None)
            except (ValueError, OSError) as err:
                log.error("index integrity check failed: %s", err)
                self.integrity.update(state="damaged", error=str(err))

        threading.Thread(target=work, name="gair-verify", daemon=True).start()

    @property
    def streetview_weight(self) -> float:
        """The location weight of a place's street-view query (`gair.place_query`), as
        `gair eval` chose it for the run; 0 (the INR embedding alone) when it has none or the
        record is malformed (logged)."""
        from gair.place_query import DEFAULT_WEIGHT, config_weight

        try:
            return config_weight(self.run_config)
        except ValueError as err:
            log.warning("%s/config.json: %s; street views use the INR alone", self.run_dir, err)
            return DEFAULT_WEIGHT

    @property
    def head_names(self) -> list[str]:
        """Tasks the run's prediction heads answer, from config.json (no torch needed)."""
        meta = self.run_config.get("heads") or {}
        if not meta.get("file") or not (self.run_dir / meta["file"]).is_file():
            return []
        return [t["name"] for t in meta.get("tasks", [])]

    @property
    def heads(self):
        """The run's `gair.heads.Heads` (loaded on first use; None when absent or unusable)."""
        if not self._heads_loaded:
            with self._heads_lock:
                if not self._heads_loaded:
                    from gair.heads import Heads

                    try:
                        self._heads = Heads.load(self.run_dir)
                    except (ValueError, OSError) as err:
                        log.warning("prediction heads of %s not usable: %s", self.run_dir, err)
                        self._heads, self.heads_error = None, str(err)
                    self._heads_loaded = True
        return self._heads

    @property
    def model_ready(self) -> bool:
        """Whether the model is loaded (a click before that waits for it)."""
        return bool(getattr(self.index.embedder, "loaded", True))

    @contextlib.contextmanager
    def page_run(self):
        """Mark a page script run (the model loader waits for the pages to go quiet)."""
        with self._heads_lock:
            self._page_runs += 1
        try:
            yield
        finally:
            with self._heads_lock:
                self._page_runs -= 1
                self._last_page_run = time.monotonic()

    def _wait_for_quiet_pages(
        self, quiet_s: float = LOAD_AFTER_QUIET_S, first_page: bool = False
    ) -> None:
        """Return once no page has run for `quiet_s` (with `first_page`: and a first page has
        been drawn), at most `LOAD_WAIT_MAX_S` from now. Outside the app (no pages) at once."""
        deadline = time.monotonic() + LOAD_WAIT_MAX_S
        while time.monotonic() < deadline:
            with self._heads_lock:
                idle = time.monotonic() - self._last_page_run
                busy = self._page_runs > 0 or idle < quiet_s
                busy = busy or (first_page and not self._last_page_run)
            if not busy:
                return
            time.sleep(0.05)

    def load_model_in_background(self) -> None:
        """Load the model and the heads in a daemon thread, once per process, as soon as the
        pages have been quiet for `LOAD_AFTER_QUIET_S`: the import of torch holds Python's
        GIL for seconds, so a page (or an eager first click, answered from the index while the
        model loads: `app.logic.provisional`) is drawn first rather than slowed down."""
        with self._heads_lock:
            if self._warm_started:
                return
            self._warm_started = True

        def work():
            self._wait_for_quiet_pages()
            loader = getattr(self.index.embedder, "load", None)
            try:
                if loader is not None:
                    loader()
            except Exception as err:  # noqa: BLE001 - the next click shows it
                log.warning("loading the model failed: %s", err)
            self.heads  # noqa: B018 - loads them
            freeze_long_lived_objects()

        threading.Thread(target=work, name="gair-model", daemon=True).start()

    @property
    def cells(self) -> pd.DataFrame:
        return self.index.cells

    @property
    def gallery(self) -> pd.DataFrame:
        return self.index.streetviews

    @property
    def source_kind(self) -> str:
        """ "world" (the demo), "rasters" or "prepared"."""
        return source_kind(self.source if self.source is not None else self.world)

    @property
    def has_labels(self) -> bool:
        """Whether ground truth can be shown: the demo world, and an index with its labels."""
        from gair.world.world import LABELS

        return (
            self.world is not None
            and source_has_labels(self.world)
            and any(c in self.cells for c in LABELS)
        )

    @property
    def spacing(self) -> float:
        """The cells' typical spacing (radians), computed once: for an H3 grid from its
        resolution (the distance between neighbouring centres, sqrt(3) x the mean edge),
        else measured (`app.extent.cell_spacing`, ~1 s per 4 M cells)."""
        from app.extent import cell_spacing

        def build():
            spec = str(self.manifest.get("grid", {}).get("spec", ""))
            if spec.startswith("h3:") and spec[3:].isdigit() and len(self.cell_latlon) > 1:
                import h3

                edge_km = h3.average_hexagon_edge_length(int(spec[3:]), "km")
                return math.sqrt(3.0) * edge_km / geo.EARTH_RADIUS_KM
            return cell_spacing(self.cell_latlon[:, 0], self.cell_latlon[:, 1])

        return self.cached("__spacing__", build)

    @property
    def extent(self):
        """The index's area (`app.extent.Extent`): the source's recorded bounds, else the
        cells' box; global for the demo."""
        from app.extent import index_extent

        return self.cached(
            "__extent__",
            lambda: index_extent(self.manifest, self.cell_latlon[:, 0], self.cell_latlon[:, 1]),
        )

    @property
    def raster(self):
        """The per-cell image rasteriser (built on first use, ~1 s for 86k cells): the whole
        world for a global index, the index's own box at its cells' resolution otherwise."""
        if self._raster is None:
            with self._raster_lock:
                if self._raster is None:
                    from app.raster import CellRaster

                    self._raster = CellRaster.for_cells(
                        self.cell_latlon[:, 0], self.cell_latlon[:, 1], spacing=self.spacing
                    )
        return self._raster

    def stored_predictions_current(self) -> bool:
        """Whether the index's `pred_` columns come from the run's current heads (the build
        recorded their SHA-256; `gair eval` may have retrained them since). No torch."""
        from gair.run_dir import heads_sha256

        built_with = self.manifest.get("heads_sha256")
        return built_with is not None and built_with == heads_sha256(self.run_dir)

    def warm_heatmap(self, after_first_page: bool = False) -> None:
        """Build the rasteriser and the heatmap's vectors now (a background thread at start:
        `after_first_page` waits for the first page, so as not to slow it; a click before
        then builds them itself)."""
        if after_first_page:
            self._wait_for_quiet_pages(HEAT_AFTER_QUIET_S, first_page=True)
        self.heat_similarity(np.zeros(self.index.manifest["dim"], np.float32))

    def heat_similarity(self, vec: np.ndarray) -> np.ndarray:
        """Cosine of `vec` [E] to the cells the heatmap draws (`raster.rows`) [len(rows)], from a
        resident int8 copy of those rows (at most one per pixel of the overlay, so bounded at
        any index size: 95 MB and ~70 ms for the 3.7e5 rows of a 4 M-cell index on one core;
        cosine error <= ~0.003, `heat_codes`)."""
        codes, scales = self.cached("__heat_vectors__", lambda: heat_codes(self))
        vec = np.asarray(vec, np.float32)
        out = np.empty(len(codes), np.float32)
        for i in range(0, len(codes), HEAT_BLOCK):
            np.matmul(
                codes[i : i + HEAT_BLOCK].astype(np.float32), vec, out=out[i : i + HEAT_BLOCK]
            )
        return out * scales

    def cached_view(self, key, build, most: int = 48):
        """An overlay drawn for one map view (`app.logic.detail`): `build()` on first use, kept
        among the `most` recently used (views are many, each image ~100 kB)."""
        with self._layers_lock:
            if key in self._views:
                self._views.move_to_end(key)
                return self._views[key]
        value = build()
        with self._layers_lock:
            self._views[key] = value
            while len(self._views) > most:
                self._views.popitem(last=False)
        return value

    def cached(self, name: str, build):
        """Something computed once per process from the index (a map layer, the gallery's
        similarity floor, ...): `build()` on first use, then the same object."""
        if name not in self._layers:
            with self._layers_lock:
                if name not in self._layers:
                    self._layers[name] = build()
        return self._layers[name]

    def cached_layer(self, name: str, build):
        """A static map layer (predictions / labels over all cells), built once per process."""
        return self.cached(name, build)


def freeze_long_lived_objects() -> None:
    """Move what the process holds once warm (torch, the model, pandas tables, plotly; ~574k
    objects) out of the garbage collector's reach (`gc.freeze`), so the full collections
    Python still runs now and then under the GIL scan only what clicks create."""
    import gc

    import plotly.graph_objects  # noqa: F401 - the panels import it on first use

    gc.collect()
    gc.freeze()


def _resolve(path: str | None) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else (Path.cwd() / p)


def open_resources(settings: Settings) -> Resources:
    """Open world, index and the checkpoint's identity (the model and heads load on first use,
    see `Resources.load_model_in_background`). SetupError with the fix when not."""
    from gair.deferred import DeferredEmbedder
    from index.search import (
        GridIndex,
        IndexDamagedError,
        IndexMismatchError,
        read_manifest,
        recorded_path,
    )

    started = time.perf_counter()
    device = embedder_device(settings.device)  # SetupError for an unknown device
    index_dir = _resolve(settings.index)
    try:
        manifest = read_manifest(index_dir)
    except FileNotFoundError as err:
        raise SetupError(
            f"No index at `{settings.index}` ({err}).",
            "make demo   # or: gair index build --checkpoint RUN_DIR --world data/world "
            f"--grid h3:4 --land-only --out {settings.index}",
        ) from err
    except (ValueError, json.JSONDecodeError) as err:
        raise SetupError(
            f"The index at `{settings.index}` cannot be read: {err}",
            f"gair index build ... --out {settings.index}",
        ) from err
    if device is not None and device.startswith("cuda"):
        _require_cuda(settings.device)
    run_dir = (
        _resolve(settings.checkpoint)
        if settings.checkpoint
        else recorded_path(index_dir, manifest, "checkpoint")
    )
    world_override = _resolve(settings.world)
    if not (run_dir / "config.json").is_file():
        if manifest_kind(manifest) == "world":  # the world's message first, as before
            open_source(index_dir, manifest, world_override, settings.index, run_dir)
        raise SetupError(
            f"No checkpoint at `{run_dir}` (config.json missing).",
            "make train-demo   # or set GAIR_CHECKPOINT to the run dir the index was built with",
        )
    source = open_source(index_dir, manifest, world_override, settings.index, run_dir)
    try:
        # the model itself loads on first use (or via load_model_in_background): the first
        # page needs only the index's files, and importing torch + timm takes ~7 s
        embedder = DeferredEmbedder(run_dir, source, threads=app_threads(), device=device)
        embedder.verify_weights()
    except (ValueError, OSError) as err:
        raise SetupError(
            f"The checkpoint `{run_dir}` cannot be loaded: {err}", "make train-demo"
        ) from err
    rebuild = f"gair index build --checkpoint {run_dir} ... --out {settings.index}"
    try:
        index = GridIndex(index_dir, embedder)
    except IndexMismatchError as err:
        raise SetupError(str(err), rebuild) from err
    except IndexDamagedError as err:  # its message names the file and the rebuild command
        raise SetupError(f"The index at `{settings.index}` is damaged: {err}") from err
    except (ValueError, OSError) as err:
        raise SetupError(f"The index at `{settings.index}` cannot be read: {err}", rebuild) from err

    try:
        from gair.evaluation.report import read_eval

        eval_result = read_eval(run_dir)
    except (ValueError, OSError, json.JSONDecodeError) as err:
        log.warning("eval.json of %s not readable: %s", run_dir, err)
        eval_result = None
    cells = index.cells
    latlon = cells[["lat", "lon"]].to_numpy(np.float64)
    return Resources(
        settings=settings,
        world=demo_world(source),
        source=source,
        index=index,
        manifest=manifest,
        run_dir=run_dir,
        run_config=embedder.run_config,
        eval_result=eval_result,
        open_seconds=time.perf_counter() - started,
        cell_latlon=latlon,
    )


def _require_cuda(device: str) -> None:
    """SetupError when CUDA was asked for and torch sees no GPU."""
    import torch

    if not torch.cuda.is_available():
        raise SetupError(
            f"--device {device} was asked for, but torch sees no CUDA device here.",
            "gair app --device auto   # CUDA when available, else the CPU",
        )


def data_attributions(world=None) -> str | None:
    """DATA.md (or DATA-SOURCES.md) of the repo, when present."""
    for name in ("DATA.md", "DATA-SOURCES.md", "docs/DATA.md", "docs/DATA-SOURCES.md"):
        p = REPO_ROOT / name
        if p.is_file():
            return p.read_text(encoding="utf-8", errors="replace")
    return None


def app_threads() -> int:
    """Intra-op threads per call in the app process (env GAIR_APP_THREADS, default 1)."""
    return int(os.environ.get("GAIR_APP_THREADS") or 1)


def configure_threads(n: int | None = None) -> int:
    """Intra-op threads for torch and FAISS in the app process (env GAIR_APP_THREADS, default 1).
    The app serialises model calls and serves several sessions on few cores; one thread per
    call avoids OpenMP oversubscription, which costs far more than it gains on 2 cores.
    torch is configured here only when already imported; the deferred model sets it on load."""
    n = int(n or app_threads())
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except (ImportError, AttributeError):
        pass
    try:  # numpy's BLAS, when threadpoolctl is installed (else set OPENBLAS_NUM_THREADS at launch)
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    return n
