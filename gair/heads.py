"""Downstream prediction heads trained on frozen GAIR point embeddings (by `gair eval`), stored
in the run dir as `heads.safetensors` with their tasks (classes, units) in `config.json`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from gair.atomic import atomic_path, write_json
from gair.checkpoint import file_sha256, read_run_config
from gair.evaluation.probes import Probe
from gair.evaluation.tasks import Task, task_from_dict

HEADS_FILE = "heads.safetensors"


class Heads:
    """A set of probes, one per task, over embeddings of size E."""

    def __init__(self, tasks: list[Task], probes: dict[str, Probe], kinds: dict[str, str]):
        self.tasks = {t.name: t for t in tasks}
        self.probes = probes
        self.kinds = kinds

    def save(self, run_dir: str | Path) -> None:
        run_dir = Path(run_dir)
        state = {
            f"{name}.{k}": v.detach().contiguous()
            for name, p in self.probes.items()
            for k, v in p.state_dict().items()
        }
        with atomic_path(run_dir / HEADS_FILE) as tmp:
            save_file(state, str(tmp))
        meta = read_run_config(run_dir)
        meta["heads"] = {
            "file": HEADS_FILE,
            "sha256": file_sha256(run_dir / HEADS_FILE),
            "tasks": [
                {
                    "name": t.name,
                    "kind": t.kind,
                    "units": t.units,
                    "classes": t.classes,
                    "probe": self.kinds[t.name],
                    "in_dim": int(self.probes[t.name].x_mean.shape[0]),
                }
                for t in self.tasks.values()
            ],
        }
        write_json(run_dir / "config.json", meta)

    @classmethod
    def load(cls, run_dir: str | Path) -> Heads | None:
        """The run's heads, or None when `gair eval` has not trained any."""
        run_dir = Path(run_dir)
        meta = read_run_config(run_dir).get("heads")
        if not meta or not (run_dir / meta["file"]).is_file():
            return None
        if file_sha256(run_dir / meta["file"]) != meta["sha256"]:
            raise ValueError(f"{run_dir / meta['file']} does not match its SHA-256 in config.json")
        state = load_file(str(run_dir / meta["file"]))
        tasks, probes, kinds = [], {}, {}
        for d in meta["tasks"]:
            task = task_from_dict(d)
            n_out = 1 if task.kind == "regression" else len(task.classes)
            probe = Probe(d["in_dim"], n_out, d["probe"])
            prefix = f"{task.name}."
            probe.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
            tasks.append(task)
            probes[task.name] = probe.eval()
            kinds[task.name] = d["probe"]
        return cls(tasks, probes, kinds)

    @torch.no_grad()
    def predict(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Embeddings [N, E] -> {task: values [N] (regression) or class probabilities [N, K]}."""
        x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        out = {}
        for name, probe in self.probes.items():
            y = probe(x)
            out[name] = (
                y[:, 0].numpy() if self.tasks[name].kind == "regression" else y.softmax(-1).numpy()
            )
        return out

    def predict_table(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Column-friendly predictions: regression values, and for classes the top class name
        (`pred_<task>`) and its probability (`pred_<task>_p`)."""
        cols = {}
        for name, y in self.predict(embeddings).items():
            task = self.tasks[name]
            if task.kind == "regression":
                cols[f"pred_{name}"] = y.astype(np.float32)
            else:
                top = y.argmax(-1)
                cols[f"pred_{name}"] = np.asarray(task.classes, dtype=object)[top].astype(str)
                cols[f"pred_{name}_p"] = y.max(-1).astype(np.float32)
        return cols
