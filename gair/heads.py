"""Downstream prediction heads trained on frozen GAIR point embeddings (by `gair eval`), stored
in the run dir as `heads.safetensors` with their tasks (classes, units) in `config.json`.

`Heads.load` checks the heads file against its description before anything uses it (tasks,
kinds, class lists, input size = the model's embedding size, every tensor's shape, finite
weights) and raises a one-line ValueError naming the task and the disagreement, so a caller
(the app) can hide predictions with the reason instead of failing on every click.
`Heads.predict` takes point embeddings [N, E] (E the size the heads were trained for, finite),
or a dict of the inputs the heads use: {"inr": [N, E], "location": [N, E]}. Each head says its
input ("inr", "location" or "inr+location", the two concatenated) and, for classes, the
temperature calibrated on the val split (probabilities = softmax(logits / T)); regression heads
may carry a prediction interval fitted on the val split (`gair.intervals`, `Heads.intervals`)
and a target transform they were fitted on (`gair.targets`: "identity" or "asinh:S"), undone by
`predict` so values are always in the task's units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gair import targets as target_transforms
from gair.atomic import atomic_path, locked_dir, write_json
from gair.checkpoint import file_sha256, read_run_config
from gair.evaluation.probes import Probe
from gair.evaluation.tasks import KOPPEN, Task, task_from_dict
from gair.intervals import Interval

HEADS_FILE = "heads.safetensors"
PROBE_KINDS = ("linear", "mlp")
TASK_KINDS = ("classification", "regression")
INPUTS = {"inr": ("inr",), "location": ("location",), "inr+location": ("inr", "location")}
FIXED_CLASSES = {"koppen": KOPPEN}  # tasks whose classes the code fixes (Task.encode)


class Heads:
    """A set of probes, one per task, over embeddings of size E."""

    def __init__(
        self,
        tasks: list[Task],
        probes: dict[str, Probe],
        kinds: dict[str, str],
        inputs: dict[str, str] | None = None,
        temperatures: dict[str, float] | None = None,
        intervals: dict[str, Interval] | None = None,
        targets: dict[str, str] | None = None,
    ):
        self.tasks = {t.name: t for t in tasks}
        self.intervals = dict(intervals or {})  # regression task -> its val-fitted interval
        self.probes = probes
        self.kinds = kinds
        self.inputs = {name: "inr" for name in self.tasks} | dict(inputs or {})
        self.temperatures = {name: 1.0 for name in self.tasks} | dict(temperatures or {})
        self.targets = {name: target_transforms.IDENTITY for name in self.tasks} | dict(
            targets or {}
        )
        for name, target in self.targets.items():
            target_transforms.parse(target)  # ValueError on a malformed one
            if target != target_transforms.IDENTITY and self.tasks[name].kind != "regression":
                raise ValueError(f"Heads: target transforms are for regression only, got {name}")
        if set(self.tasks) != set(probes) or set(self.tasks) != set(kinds):
            raise ValueError(
                f"Heads: tasks {sorted(self.tasks)}, probes {sorted(probes)} and kinds "
                f"{sorted(kinds)} must name the same tasks"
            )
        bad = {n: i for n, i in self.inputs.items() if i not in INPUTS}
        if bad:
            raise ValueError(f"Heads: inputs must be one of {list(INPUTS)}, got {bad}")
        odd = [n for n in self.intervals if self.tasks.get(n, Task(n, "")).kind != "regression"]
        if odd:
            raise ValueError(f"Heads: intervals are for regression tasks only, got {odd}")
        bad_t = {n: t for n, t in self.temperatures.items() if not (np.isfinite(t) and t > 0)}
        if bad_t:
            raise ValueError(f"Heads: temperatures must be positive numbers, got {bad_t}")
        # E: the size of each input (the INR and location embeddings share the model's space)
        dims = {}
        for name, p in probes.items():
            parts = INPUTS[self.inputs[name]]
            dims[name] = int(p.x_mean.shape[0]) // len(parts)
        if len(set(dims.values())) > 1:
            raise ValueError(f"Heads: every probe must take the same embedding size, got {dims}")
        self.in_dim = next(iter(dims.values()), 0)
        self.needs = sorted({part for i in self.inputs.values() for part in INPUTS[i]})

    def save(self, run_dir: str | Path) -> None:
        run_dir = Path(run_dir)
        state = {
            f"{name}.{k}": v.detach().contiguous()
            for name, p in self.probes.items()
            for k, v in p.state_dict().items()
        }
        with atomic_path(run_dir / HEADS_FILE) as tmp:
            save_file(state, str(tmp))
        with locked_dir(run_dir):  # not beside a save_model's commit of config.json
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
                        "input": self.inputs[t.name],
                        "temperature": float(self.temperatures[t.name]),
                        "hidden": _hidden(self.probes[t.name]),
                        "target": self.targets[t.name],
                    }
                    | (
                        {"interval": self.intervals[t.name].to_dict()}
                        if t.name in self.intervals
                        else {}
                    )
                    for t in self.tasks.values()
                ],
            }
            write_json(run_dir / "config.json", meta)

    @classmethod
    def load(cls, run_dir: str | Path) -> Heads | None:
        """The run's heads, or None when `gair eval` has not trained any.

        ValueError (one line, naming the task) when config.json's description of the heads is
        malformed or disagrees with the heads file: SHA-256, task kinds, class lists (a class
        count other than the head's outputs), input size other than the model's embedding
        size, missing, extra or wrongly shaped tensors, non-finite weights.
        """
        run_dir = Path(run_dir)
        config = read_run_config(run_dir)
        meta = config.get("heads")
        if not meta:
            return None
        if not isinstance(meta, dict) or not isinstance(meta.get("file"), str):
            raise ValueError(
                f"{run_dir}/config.json: 'heads' must name its file, got {meta!r:.200}"
            )
        path = run_dir / meta["file"]
        if not path.is_file():
            return None
        if file_sha256(path) != meta.get("sha256"):
            raise ValueError(f"{path} does not match its SHA-256 in config.json")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, RuntimeError) as err:
            raise ValueError(f"{path} is not a readable safetensors file ({err})") from err
        embed_dim = config.get("model", {}).get("embed_dim")
        descs = meta.get("tasks")
        if not isinstance(descs, list) or not descs:
            raise ValueError(f"{run_dir}/config.json: heads.tasks must be a non-empty list")
        tasks, probes, kinds, inputs, temps, intervals, targets = [], {}, {}, {}, {}, {}, {}
        for d in descs:
            task, probe_kind, in_dim = _check_task(d, path, embed_dim, seen=set(kinds))
            n_out = 1 if task.kind == "regression" else len(task.classes)
            probe = Probe(in_dim, n_out, probe_kind, hidden=d.get("hidden") or 128)
            inputs[task.name] = d.get("input", "inr")
            temps[task.name] = d.get("temperature", 1.0)
            targets[task.name] = d.get("target", target_transforms.IDENTITY)
            if d.get("interval") is not None:
                if task.kind != "regression":
                    raise ValueError(f"{path}: head {task.name!r}: only regression has intervals")
                intervals[task.name] = Interval.from_dict(
                    d["interval"], f"{path}: head {task.name!r} interval"
                )
            prefix = f"{task.name}."
            own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            _check_tensors(task, own, probe.state_dict(), path, probe_kind, in_dim)
            probe.load_state_dict(own)
            tasks.append(task)
            probes[task.name] = probe.eval()
            kinds[task.name] = probe_kind
        extra = sorted(k for k in state if k.split(".", 1)[0] not in kinds)
        if extra:
            raise ValueError(f"{path} holds tensors of no task in config.json: {extra[:5]}")
        return cls(tasks, probes, kinds, inputs, temps, intervals, targets)

    def _embeddings(self, embeddings, first_row: int = 0) -> torch.Tensor:
        """Validated embeddings [N, E] as a float32 tensor (errors number rows from
        `first_row`)."""
        if isinstance(embeddings, torch.Tensor):
            embeddings = embeddings.detach().cpu().numpy()
        try:
            x = np.asarray(embeddings)
        except ValueError as err:
            raise ValueError(
                "Heads.predict: embeddings must be a [N, E] array, got a ragged one"
            ) from err
        expected = f"[N, {self.in_dim}] (point embeddings of the size the heads were trained on)"
        if x.dtype.kind not in "iuf":
            raise ValueError(
                f"Heads.predict: embeddings must be real numbers {expected}, got dtype {x.dtype}"
            )
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            hint = " (one embedding: pass emb[None])" if x.shape == (self.in_dim,) else ""
            raise ValueError(
                f"Heads.predict: embeddings must be {expected}, got shape {x.shape}{hint}"
            )
        finite = np.isfinite(x)
        if not finite.all():
            row, col = (int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(
                f"Heads.predict: embeddings must be finite, got {x[row, col].item()!r} at row "
                f"{first_row + row}, column {col}"
            )
        return torch.as_tensor(x, dtype=torch.float32)

    def _inputs(self, embeddings, first_row: int = 0) -> dict[str, torch.Tensor]:
        """{"inr": [N, E], "location": [N, E]} validated; an array alone is the INR input."""
        given = embeddings if isinstance(embeddings, dict) else {"inr": embeddings}
        missing = [k for k in self.needs if k not in given]
        if missing:
            raise ValueError(
                f"Heads.predict: these heads also take the {' and '.join(missing)} embedding: "
                f'pass {{"inr": ..., "location": ...}}'
            )
        out = {k: self._embeddings(given[k], first_row) for k in self.needs}
        sizes = {len(v) for v in out.values()}
        if len(sizes) > 1:
            raise ValueError(f"Heads.predict: inputs have different numbers of rows {sizes}")
        return out

    @torch.no_grad()
    def predict(self, embeddings, first_row: int = 0) -> dict[str, np.ndarray]:
        """Embeddings [N, E] (or {"inr": [N, E], "location": [N, E]}) -> {task: values [N]
        (regression) or calibrated class probabilities [N, K]}.

        ValueError unless each input is a finite real [N, E] array with E = `in_dim`; N = 0
        gives empty results; `first_row`: the number errors give the first row (a chunk's)."""
        x = self._inputs(embeddings, first_row)
        out = {}
        for name, probe in self.probes.items():
            y = probe(torch.cat([x[k] for k in INPUTS[self.inputs[name]]], 1))
            if self.tasks[name].kind == "regression":
                out[name] = target_transforms.inverse(self.targets[name], y[:, 0].numpy())
            else:
                out[name] = (y / self.temperatures[name]).softmax(-1).numpy()
        return out

    def predict_table(self, embeddings, chunk_rows: int = 65_536) -> dict[str, np.ndarray]:
        """Column-friendly predictions: regression values, and for classes the top class name
        (`pred_<task>`) and its probability (`pred_<task>_p`). Input as in `predict`; rows are
        predicted `chunk_rows` at a time, so memory stays bounded on a 4 M-cell index."""
        given = embeddings if isinstance(embeddings, dict) else {"inr": embeddings}
        sizes = {len(v) if hasattr(v, "__len__") else -1 for v in given.values()}
        n = max(sizes, default=0)
        if n <= chunk_rows or len(sizes) > 1 or -1 in sizes:
            # (also every malformed input: `predict` names what is wrong with the whole of it)
            return self._columns(self.predict(embeddings))
        parts = [
            self._columns(self.predict({k: v[i : i + chunk_rows] for k, v in given.items()}, i))
            for i in range(0, n, chunk_rows)
        ]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _columns(self, predicted: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cols = {}
        for name, y in predicted.items():
            task = self.tasks[name]
            if task.kind == "regression":
                cols[f"pred_{name}"] = y.astype(np.float32)
            else:
                top = y.argmax(-1)
                cols[f"pred_{name}"] = np.asarray(task.classes, dtype=object)[top].astype(str)
                cols[f"pred_{name}_p"] = y.max(-1).astype(np.float32)
        return cols


def _check_task(d, path: Path, embed_dim, seen: set[str]) -> tuple[Task, str, int]:
    """One task description of config.json's heads.tasks -> (task, probe kind, in_dim)."""
    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"]:
        raise ValueError(f"{path}: a heads task needs a name, got {d!r:.200}")
    name = d["name"]
    where = f"{path}: head {name!r}"
    if name in seen or "." in name:
        raise ValueError(f"{where}: task names must be unique and contain no '.'")
    if d.get("kind") not in TASK_KINDS:
        raise ValueError(f"{where}: kind must be one of {TASK_KINDS}, got {d.get('kind')!r}")
    if d.get("probe") not in PROBE_KINDS:
        raise ValueError(f"{where}: probe must be one of {PROBE_KINDS}, got {d.get('probe')!r}")
    classes = d.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{where}: classes must be a list of names, got {classes!r:.200}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{where}: class names must be unique, got {classes!r:.200}")
    if d["kind"] == "classification" and not classes:
        raise ValueError(f"{where}: a classification head needs its class names")
    if d["kind"] == "regression" and classes:
        raise ValueError(f"{where}: a regression head has no classes, got {classes!r:.200}")
    fixed = FIXED_CLASSES.get(name)
    if fixed is not None and classes != list(fixed):
        raise ValueError(
            f"{where}: classes must be the task's {len(fixed)} classes {list(fixed)}, "
            f"got {len(classes)}: {classes!r:.200}"
        )
    inp = d.get("input", "inr")
    if inp not in INPUTS:
        raise ValueError(f"{where}: input must be one of {list(INPUTS)}, got {inp!r}")
    temp = d.get("temperature", 1.0)
    if isinstance(temp, bool) or not isinstance(temp, int | float) or not 0 < temp < 1e3:
        raise ValueError(f"{where}: temperature must be a positive number, got {temp!r}")
    target = d.get("target", target_transforms.IDENTITY)
    try:
        target_transforms.parse(target)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if target != target_transforms.IDENTITY and d["kind"] != "regression":
        raise ValueError(f"{where}: only a regression head has a target transform, got {target!r}")
    hidden = d.get("hidden")
    if hidden is not None and (
        isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1
    ):
        raise ValueError(f"{where}: hidden must be a positive integer, got {hidden!r}")
    in_dim = d.get("in_dim")
    if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
        raise ValueError(f"{where}: in_dim must be a positive integer, got {in_dim!r}")
    if embed_dim is not None and in_dim != int(embed_dim) * len(INPUTS[inp]):
        raise ValueError(
            f"{where}: in_dim {in_dim} differs from the model's embedding size {embed_dim}"
            + (f" x {len(INPUTS[inp])} (input {inp})" if len(INPUTS[inp]) > 1 else "")
        )
    return task_from_dict(d), d["probe"], in_dim


def _check_tensors(
    task: Task, own: dict, expected: dict, path: Path, probe_kind: str, in_dim: int
) -> None:
    """The head's tensors in the file against a fresh probe's state dict."""
    where = f"{path}: head {task.name!r}"
    if task.kind == "classification" and "y_mean" in own and own["y_mean"].ndim == 1:
        n_out = int(own["y_mean"].shape[0])
        if n_out != len(task.classes):
            raise ValueError(
                f"{where} outputs {n_out} classes but config.json lists {len(task.classes)}: "
                f"{task.classes!r:.200}"
            )
    missing = sorted(set(expected) - set(own))
    extra = sorted(set(own) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{where}: tensors do not match a {probe_kind} probe: missing {missing}, "
            f"unexpected {extra}"
        )
    for key, ref in expected.items():
        got = own[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise ValueError(
                f"{where}: tensor {key!r} has shape {tuple(got.shape)}, expected "
                f"{tuple(ref.shape)} (in_dim {in_dim}, {len(task.classes) or 1} outputs)"
            )
        if not bool(torch.isfinite(got).all()):
            raise ValueError(f"{where}: tensor {key!r} has non-finite values")
    if not bool((own["x_std"] > 0).all()):
        raise ValueError(f"{where}: tensor 'x_std' must be positive")


def _hidden(probe: Probe) -> int | None:
    """The hidden width of an MLP probe (None for a linear one)."""
    first = probe.net[0] if isinstance(probe.net, torch.nn.Sequential) else None
    return int(first.out_features) if first is not None else None
