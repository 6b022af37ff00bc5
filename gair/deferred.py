"""An `Embedder` whose model is loaded on first use, for processes that must answer before
torch and timm are imported (about 7 s on 2 CPU cores): the app draws its first page from the
index's files alone and loads the model in the background.

Everything the identity checks need (`run_dir`, `checkpoint_hash`, `config`, `dim`) comes from
`config.json` without torch; any other attribute (`point`, `street_view`, `location`,
`tiling`, ...) loads the real `gair.embed.Embedder` once, under a lock, and delegates to it.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from gair.run_dir import checkpoint_hash, read_run_config


class DeferredEmbedder:
    """Stands in for `gair.embed.Embedder(run_dir, world, **kwargs)` until it is needed.

    Args:
        run_dir: the checkpoint's run dir.
        world: the RS source (see `Embedder`).
        threads: torch intra-op threads to set when torch is imported (None: leave as is).
        **kwargs: passed to `Embedder`.
    """

    def __init__(self, run_dir: str | Path, world=None, threads: int | None = None, **kwargs):
        self.run_dir = Path(run_dir)
        self.world = world
        self.run_config = read_run_config(self.run_dir)
        self.checkpoint_hash = checkpoint_hash(self.run_dir)  # ValueError when not recorded
        self.config = self.run_config["model"]
        self._threads = threads
        self._kwargs = kwargs
        self._embedder = None
        self._lock = threading.Lock()

    def verify_weights(self) -> None:
        """ValueError unless the weights file exists and matches config.json's SHA-256 (the
        check `load_model` makes, done early so a bad checkpoint fails when opened)."""
        from gair.run_dir import committed_weights, file_sha256

        path = committed_weights(self.run_dir, self.run_config)
        if not path.is_file():
            raise ValueError(f"{path} is missing")
        if file_sha256(path) != self.checkpoint_hash:
            raise ValueError(
                f"{path} does not match its SHA-256 in config.json (truncated or changed?)"
            )

    @property
    def dim(self) -> int:
        return int(self.config["embed_dim"])

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def load(self):
        """The real Embedder (imports torch and loads the weights on the first call)."""
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    from gair.embed import Embedder

                    if self._threads:
                        import torch

                        torch.set_num_threads(self._threads)
                    self._embedder = Embedder(self.run_dir, self.world, **self._kwargs)
        return self._embedder

    def load_in_background(self) -> threading.Thread:
        """Start loading in a daemon thread; errors surface again on the next use."""
        thread = threading.Thread(target=self._load_quietly, name="gair-model", daemon=True)
        thread.start()
        return thread

    def _load_quietly(self) -> None:
        # a failure is raised again by the next load() on the caller's thread, with its message
        with contextlib.suppress(Exception):
            self.load()

    def __getattr__(self, name: str):
        if name.startswith("_"):  # not found among our own attributes
            raise AttributeError(name)
        return getattr(self.load(), name)
